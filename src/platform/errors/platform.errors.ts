import { defineErrorCodes } from './catalog.js';

/**
 * The codes the platform answers with on any route: the tenant check, pagination, and the database
 * errors mapped in one place (`mapDatabaseError` in database-errors.ts).
 */
export const PlatformErrors = defineErrorCodes({
  'validation_failed': { status: 400, description: 'the input is invalid: details name each field and its problems' },
  'pagination.cursor': { status: 400, description: 'the cursor is not one this API issued for this list' },
  'organization.not_found': { status: 404, description: 'the organization does not exist or the caller is not a member' },
  'workspace.not_found': { status: 404, description: 'the workspace (X-Workspace-Id) does not exist in the organization' },
  'workspace.invalid': { status: 400, description: 'X-Workspace-Id is not a UUID' },
  'forbidden.role': { status: 403, description: 'the caller\'s role in the organization does not allow this action' },
  'auth.user_required': { status: 403, description: 'the route acts for a signed-in user; a service key or API key cannot call it' },
  'api_keys.route_closed': { status: 403, description: 'the route is not open to API keys (user routes /v1/me/..., key management)' },
  'api_keys.scope_missing': { status: 403, description: 'the API key lacks the scope the route needs (details.scope names it)' },
  'auth.service_required': { status: 403, description: 'the route is for a service-role key' },
  'auth.unauthorized': { status: 401, description: 'no valid credentials: missing, expired or revoked token' },
  'conflict.unique': { status: 409, description: 'a record with the same key already exists' },
  'conflict.reference': { status: 409, description: 'the record refers to, or is referred to by, another record' },
  'conflict.retry': { status: 409, description: 'the change conflicted with a concurrent one; retry' },
  'invalid': { status: 422, description: 'the database refused a value (a check constraint or an out-of-range value)' },
  'rejected': { status: 422, description: 'a rule in the database refused the change' },
  'forbidden': { status: 403, description: 'the database refused the change to this caller (row-level security or privileges)' },
});
