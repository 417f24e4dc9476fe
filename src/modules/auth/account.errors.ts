import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** The codes of the account e-mails' routes (password reset, e-mail change). */
export const AccountErrors = defineErrorCodes({
  'auth.reset_invalid': { status: 400, description: 'the reset link is unknown, already used or expired (30 minutes); ask for a new one' },
  'auth.email_change_invalid': { status: 400, description: 'the confirmation link is unknown, already used or expired; ask for the change again' },
  'auth.email_taken': { status: 409, description: 'another account uses this e-mail address' },
  'auth.password_incorrect': { status: 403, description: 'the current password is not correct' },
  'auth.email_unchanged': { status: 400, description: 'the new e-mail address is the current one' },
  'auth.mail_limited': { status: 429, description: 'the account asked for too many e-mails of this kind within the hour; wait details.retryAfterSeconds' },
});
