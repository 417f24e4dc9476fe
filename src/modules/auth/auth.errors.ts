import { defineErrorCodes, deriveErrorCodes } from '../../platform/errors/catalog.js';

/** The codes the auth module answers with (401 `auth.unauthorized` and 403 `auth.user_required` are the platform's). */
export const AuthErrors = defineErrorCodes({
  'auth.csrf_rejected': { status: 403, description: 'a cookie-authenticated request that changes state lacks JSON, an Origin header, or an allowed origin' },
  'auth.verification_invalid': { status: 400, description: 'the verification link is unknown, used, expired, or for another account' },
  'auth.refresh_token_missing': { status: 400, description: 'no refresh token in the body or the refresh cookie' },
  'auth.identity_taken': { status: 409, description: 'the identity already signs in to another account' },
  'auth.link_required': { status: 409, description: 'an account with this e-mail exists: sign in to it and link the identity' },
  'auth.recent_sign_in_required': {
    status: 403,
    description: 'adding or removing a sign-in method needs re-authentication: send the password in the body, or use an access token of a sign-in '
      + '(password or token exchange) within the last 5 minutes; a refreshed token does not count',
  },
  'auth.identity_not_found': { status: 404, description: 'the signed-in user has no identity of this provider' },
  'auth.last_sign_in_method': { status: 409, description: 'the identity is the account\'s last way to sign in: add another (a password, another identity) first' },
  'auth.email_proof_required': {
    status: 409,
    description: 'the identity is the only one that verified the account\'s e-mail: verify it another way first (POST /v1/auth/email-verification)',
  },
  'auth.email_unverified': {
    status: 403,
    description: 'creating a business organization, an invitation or an API key needs the account\'s e-mail verified: open the link mailed to it '
      + '(POST /v1/auth/email-verification sends a new one)',
  },
  'auth.locked': { status: 429, description: 'too many failed logins; wait details.retryAfterSeconds' },
  'auth.rate_limited': { status: 429, description: 'too many registrations from this address; wait details.retryAfterSeconds' },
  'session.not_found': { status: 404, description: 'the session does not exist or is not the caller\'s' },
});

// CookieCsrfGuard (global) refuses a cookie-authenticated request that changes state unless it is JSON from an allowed origin:
// any write can answer it when AUTH_COOKIES is on.
deriveErrorCodes((op, _path, method) => (['post', 'put', 'patch', 'delete'].includes(method) ? ['auth.csrf_rejected'] : []));
