import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the privacy module answers with. */
export const PrivacyErrors = defineErrorCodes({
  'privacy.user_required': { status: 403, description: 'this route acts for a signed-in person; a service key cannot call it' },
  'privacy.recent_sign_in_required': {
    status: 403,
    description: 'erasure needs re-authentication: send the password in the body, or use an access token of a sign-in (password or token exchange) within the last 5 minutes; a refreshed token does not count',
  },
  'privacy.password_incorrect': { status: 403, description: 'the password given for re-authentication is not the account\'s' },
  'privacy.sole_owner': {
    status: 409,
    description: 'the person is the only owner of an organization that has other members: make another member owner first (details.organizationIds)',
  },
  'privacy.party_not_found': { status: 404, description: 'no such party (vendor, customer) in this organization' },
  'privacy.already_erased': { status: 409, description: 'this person has been erased already' },
  'data_export.not_found': { status: 404, description: 'no such data export (of yours, or of this organization)' },
  'privacy.export_in_progress': { status: 409, description: 'an export of the same data is still being prepared: wait for it (GET its status)' },
  'privacy.export_link_invalid': { status: 403, description: 'the download link is malformed, its signature does not match, or the export is not ready' },
  'privacy.export_link_expired': { status: 410, description: 'the download link has expired (links live RETENTION_DATA_EXPORT_HOURS, 24 hours by default): ask for a new export' },
});
