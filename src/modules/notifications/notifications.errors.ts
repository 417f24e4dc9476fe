import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the notifications module answers with. */
export const NotificationErrors = defineErrorCodes({
  'notification.not_found': { status: 404, description: 'no notification of yours has this id' },
  'notification.security_always_on': { status: 422, description: 'security notices cannot be switched off (on either channel)' },
  'notification.digest_email_only': { status: 422, description: 'only the e-mail channel has a digest' },
  'notification.security_immediate': { status: 422, description: 'security e-mails (sign-in alerts) are sent at once: the security category has no digest' },
  'notification.preference_repeated': { status: 400, description: 'the same category and channel appear twice' },
});
