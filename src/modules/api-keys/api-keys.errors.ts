import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** The API keys' codes (the tenant interceptor throws the two api_keys.route_closed / scope_missing ones). */
export const ApiKeyErrors = defineErrorCodes({
  'api_keys.scope_missing': { status: 403, description: 'the API key lacks the scope the route needs (details.scope names it)' },
  'api_keys.route_closed': { status: 403, description: 'the route is not open to API keys (user routes /v1/me/..., key management)' },
  'api_keys.user_required': { status: 403, description: 'only a person (owner or admin) manages API keys; a key or service cannot' },
  'api_keys.expiry_past': { status: 400, description: 'expiresAt is not in the future' },
  'api_keys.already_revoked': { status: 409, description: 'the key is already revoked' },
});
