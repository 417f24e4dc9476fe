import { RequestMethod, SetMetadata, applyDecorators } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { ApiExtension } from '@nestjs/swagger';

/**
 * The fixed list of API key scopes (the database checks the same list: core.api_keys.scopes). A key acts only on
 * routes whose declared scope it holds; a route that declares none is closed to keys.
 */
export const API_KEY_SCOPES = {
  'org:read': 'read the organization (name, settings) and its entitlements',
  'ledger:read': 'read the ledger: accounts, journal entries, balances, reports',
  'ledger:write': 'post journal entries and change the ledger',
  'receivables:read': 'read customers, invoices and payments',
  'receivables:write': 'issue invoices and record payments',
  'payables:read': 'read vendors, bills and payments',
  'payables:write': 'record bills and payments',
  'agents:run': 'run AI agents',
  'knowledge:read': 'search and read the knowledge base',
  'semantic:read': 'run semantic SQL queries over the organization\'s views (they show the general ledger, receivables and payables)',
  'analytics:read': 'read usage analytics',
  'analytics:write': 'send usage events',
} as const;
export type ApiKeyScope = keyof typeof API_KEY_SCOPES;
export const API_KEY_SCOPE_NAMES = Object.keys(API_KEY_SCOPES) as ApiKeyScope[];

export const API_KEY_SCOPE = 'omnizen:api-key-scope';

/** The scope an API key needs for this route (handler) or for every route of a controller. */
export const RequiresScope = (scope: ApiKeyScope) =>
  applyDecorators(SetMetadata(API_KEY_SCOPE, scope), ApiExtension('x-omnizen-api-key-scope', scope));

/**
 * A handler of an @ApiKeyScopes controller that stays closed to API keys (403 `api_keys.route_closed`, and no
 * `x-omnizen-api-key-scope` in the document): what only a person does for themselves, e.g. drafting their own expense claim.
 */
export const ClosedToApiKeys = (): MethodDecorator => SetMetadata(API_KEY_SCOPE, null);

const READ_METHODS = new Set([RequestMethod.GET, RequestMethod.HEAD, RequestMethod.OPTIONS]);

/**
 * On a controller: reads (GET) need `read`, every other handler needs `write`, unless the handler declares its
 * own @RequiresScope or is @ClosedToApiKeys. Applied per handler when the class is defined, so the OpenAPI document names each scope.
 */
export function ApiKeyScopes(scopes: { read: ApiKeyScope; write?: ApiKeyScope }): ClassDecorator {
  return (target) => {
    const proto = target.prototype;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      const handler = descriptor?.value;
      if (key === 'constructor' || typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
      if (Reflect.getMetadata(API_KEY_SCOPE, handler) !== undefined) continue; // its own scope, or @ClosedToApiKeys (null)
      // a POST that only computes (@DoesNotWrite, e.g. the tax calculation) is a read
      const reads = READ_METHODS.has(Reflect.getMetadata(METHOD_METADATA, handler)) || Reflect.getMetadata('omnizen:does-not-write', handler) === true;
      const scope = reads ? scopes.read : scopes.write;
      if (scope) RequiresScope(scope)(proto, key, descriptor!);
    }
  };
}
