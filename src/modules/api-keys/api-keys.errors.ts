import { defineErrorCodes, deriveErrorCodes } from '../../platform/errors/catalog.js';

/** The API keys' codes (api_keys.route_closed and api_keys.scope_missing, thrown by the request checks, are the platform's). */
export const ApiKeyErrors = defineErrorCodes({
  'api_key.not_found': { status: 404, description: 'no API key of this organization has this id' },
  'api_keys.user_required': { status: 403, description: 'only a person (owner or admin) manages API keys; a key or service cannot' },
  'api_keys.expiry_past': { status: 400, description: 'expiresAt is not in the future' },
  'api_keys.too_many_keys': { status: 409, description: 'the organization holds as many live keys as it may (API_KEYS_MAX_ACTIVE): revoke one first' },
  'api_keys.already_revoked': { status: 409, description: 'the key is already revoked' },
  'api_keys.personal_organization': { status: 422, description: 'a personal organization takes no API keys (its one person acts there themselves): use a business organization' },
});

// Every operation open to API keys answers a key 402 billing.feature_not_in_plan when the organization's plan has no
// API access (checked on every keyed request by the tenant interceptor, src/platform/http/tenant.ts).
deriveErrorCodes((op) => (op['x-omnizen-api-key-scope'] ? ['billing.feature_not_in_plan'] : []));
