import { declareGenericErrorCodes, defineErrorCodes, deriveErrorCodes, type DocumentOperation } from './catalog.js';

/**
 * The codes the platform answers with on any route: the tenant check, pagination, and the database
 * errors mapped in one place (`mapDatabaseError` in database-errors.ts).
 */
export const PlatformErrors = defineErrorCodes({
  'validation_failed': { status: 400, description: 'the input is invalid: details name each field and its problems, the first 100 (the message says how many more; objects and arrays nest at most 64 levels deep, the body being the first)' },
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

/**
 * What the router, the body parser, the rate limiter and an unavailable database or queue answer on any route, before
 * or around its handler (framework-errors.ts, error.filter.ts, rate-limit.ts, database-errors.ts).
 */
export const RequestErrors = defineErrorCodes({
  'bad_request.json': { status: 400, description: 'the body is not valid JSON (or not UTF-8), or is empty while its Content-Type is application/json' },
  'bad_request.url': { status: 400, description: 'the path is not valid percent-encoded UTF-8' },
  'payload_too_large': { status: 413, description: 'the request body is larger than the API accepts' },
  'uri_too_long': { status: 414, description: 'a path segment (over 100 characters) or the request line (path and query string, with the headers over 16 KB) is longer than the API accepts' },
  'unsupported_media_type': { status: 415, description: 'the body is not sent as application/json in UTF-8 (a form, text/plain, another charset or media type; multipart/form-data where the operation is not an upload, another type where it is), or is sent with a Content-Encoding other than identity (gzip, br...: the answer carries Accept-Encoding: identity)' },
  'unsupported_transfer_coding': { status: 400, description: 'the Transfer-Encoding names a coding other than chunked before its final chunked (gzip, chunked): send the body with Content-Length, or chunked only' },
  'headers_too_large': { status: 431, description: 'the request headers are larger than the API accepts (16 KB with the request line)' },
  'rate_limited': { status: 429, description: 'too many requests per minute for the organization, API key or client IP; retry after Retry-After seconds' },
  'database_unavailable': { status: 503, description: 'PostgreSQL is unreachable, the connection was lost, or the server ran out of memory, disk or connections; retry after Retry-After seconds' },
  'database_timeout': { status: 503, description: 'a statement or lock timeout; retry after Retry-After seconds' },
  'queue_unavailable': { status: 503, description: 'the job queue is down; retry after Retry-After seconds' },
});

// Any operation may answer these, whatever it declares: listed once, as the document's x-generic-error-codes.
// The database errors mapped in one place (mapDatabaseError) are among them: any statement may meet a check, a key, a
// lock conflict or a policy, so a route answering them is not a route that forgot to declare them.
declareGenericErrorCodes('validation_failed', 'auth.unauthorized', ...Object.keys(RequestErrors.codes),
  'invalid', 'rejected', 'forbidden', 'conflict.unique', 'conflict.reference', 'conflict.retry');

const hasQueryParameter = (op: DocumentOperation, name: string) => (op.parameters ?? []).some((p) => (p as { in?: string; name?: string }).in === 'query' && (p as { name?: string }).name === name);

// What a route's declaration implies: a tenant route checks the organization, the workspace header and an API key's
// scope (src/platform/http/tenant.ts), a user route refuses a non-user principal, @RequireRole the role, ?cursor= the cursor.
deriveErrorCodes((op) => [
  ...(op['x-omnizen-scope'] === 'org' ? ['organization.not_found'] : []),
  ...(op['x-omnizen-scope'] === 'user' ? ['auth.user_required'] : []),
  ...(op['x-omnizen-scope'] ? ['workspace.invalid', 'workspace.not_found'] : []),
  ...((op.security ?? []).length > 0 ? [op['x-omnizen-api-key-scope'] ? 'api_keys.scope_missing' : 'api_keys.route_closed'] : []),
  ...(op['x-omnizen-roles'] ? ['forbidden.role'] : []),
  ...(hasQueryParameter(op, 'cursor') ? ['pagination.cursor'] : []),
]);
