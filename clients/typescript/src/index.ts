import createClient, { type Client, type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema.js';

export type { components, operations, paths } from './schema.js';
export type Schemas = components['schemas'];
export type Tokens = Schemas['TokensDto'];
export type ApiError = Schemas['ErrorResponse'];
/**
 * Typed for JSON answers: an operation that can also answer CSV (`?format=csv`), a PDF or a ZIP documents those too, but
 * the client's `data` is the JSON body; for a file, call with `parseAs: 'text'` or `'blob'`.
 */
export type OmniZenClient = Client<paths, 'application/json'>;

/** Where the client keeps the caller's tokens (memory by default; a frontend may persist them). */
export interface TokenStore {
  get(): { accessToken: string; refreshToken: string } | undefined;
  set(tokens: { accessToken: string; refreshToken: string } | undefined): void;
}

export function memoryTokenStore(): TokenStore {
  let tokens: { accessToken: string; refreshToken: string } | undefined;
  return { get: () => tokens, set: (next) => (tokens = next) };
}

export interface OmniZenClientOptions {
  /** The API's base URL, e.g. https://api.example.com */
  baseUrl: string;
  /** Defaults to a store in memory */
  tokens?: TokenStore;
  /** Defaults to globalThis.fetch */
  fetch?: typeof fetch;
  /** Sent with every request (e.g. credentials: 'include' in cookie mode) */
  credentials?: 'include' | 'same-origin' | 'omit';
}

const AUTH_PATHS = new Set(['/v1/auth/login', '/v1/auth/refresh', '/v1/auth/exchange']);

/**
 * A typed client of the OmniZen API. Tokens from login, refresh and exchange are kept in the
 * token store and sent as a bearer token; an answer 401 to any other call refreshes the tokens once
 * (POST /v1/auth/refresh, single-use refresh token) and repeats the call. When the refresh fails too, the
 * store is cleared and the 401 is returned: the user has to log in again.
 */
export function createOmniZenClient(options: OmniZenClientOptions): OmniZenClient {
  const tokens = options.tokens ?? memoryTokenStore();
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const client = createClient<paths, 'application/json'>({ baseUrl: options.baseUrl, fetch: doFetch, credentials: options.credentials });
  const retries = new Map<string, Request>();
  let refreshing: Promise<boolean> | undefined;

  const refresh = (): Promise<boolean> => {
    refreshing ??= (async () => {
      const refreshToken = tokens.get()?.refreshToken;
      if (!refreshToken) return false;
      const res = await doFetch(new Request(`${options.baseUrl}/v1/auth/refresh`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }), credentials: options.credentials,
      }));
      if (!res.ok) {
        tokens.set(undefined);
        return false;
      }
      const body = (await res.json()) as Tokens;
      tokens.set({ accessToken: body.accessToken, refreshToken: body.refreshToken });
      return true;
    })().finally(() => (refreshing = undefined));
    return refreshing;
  };

  const auth: Middleware = {
    onRequest({ request, schemaPath, id }) {
      const accessToken = tokens.get()?.accessToken;
      if (accessToken && !request.headers.has('authorization')) request.headers.set('authorization', `Bearer ${accessToken}`);
      if (!AUTH_PATHS.has(schemaPath)) retries.set(id, request.clone());
      return request;
    },
    async onResponse({ response, schemaPath, id }) {
      const retry = retries.get(id);
      retries.delete(id);
      if (AUTH_PATHS.has(schemaPath) && response.ok) {
        const body = (await response.clone().json()) as Tokens;
        tokens.set({ accessToken: body.accessToken, refreshToken: body.refreshToken });
      }
      if (response.status !== 401 || !retry || !(await refresh())) return response;
      retry.headers.set('authorization', `Bearer ${tokens.get()!.accessToken}`);
      return doFetch(retry);
    },
  };
  client.use(auth);
  return client;
}
