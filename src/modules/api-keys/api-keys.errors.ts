import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** The API keys' codes (api_keys.route_closed and api_keys.scope_missing, thrown by the request checks, are the platform's). */
export const ApiKeyErrors = defineErrorCodes({
  'api_key.not_found': { status: 404, description: 'no API key of this organization has this id' },
  'api_keys.user_required': { status: 403, description: 'only a person (owner or admin) manages API keys; a key or service cannot' },
  'api_keys.expiry_past': { status: 400, description: 'expiresAt is not in the future' },
  'api_keys.too_many_keys': { status: 409, description: 'the organization holds as many live keys as it may (API_KEYS_MAX_ACTIVE): revoke one first' },
  'api_keys.already_revoked': { status: 409, description: 'the key is already revoked' },
});
