import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Codes the database's core.accept_invitation raises in its HINT (migration 20261226000100_notifications). */
export const InvitationErrors = defineErrorCodes({
  'invitation.email_unverified': {
    status: 403,
    description: 'the account\'s e-mail is not verified: verify it first (POST /v1/auth/verify-email), or accept with the link mailed to the invitee, which proves the address',
  },
});
