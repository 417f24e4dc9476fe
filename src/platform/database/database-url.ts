import { parse } from 'pg-connection-string';

/** `url` pointed at database `name`, optionally as another login (tests and benchmarks build theirs this way). */
export function withDatabase(url: string, name: string, login?: { user: string; password?: string }): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  if (login) {
    u.username = login.user;
    u.password = login.password ?? '';
  }
  return u.toString();
}

/**
 * The password a pg pool connecting with `url` logs in with: read by pg's own parser (pg-connection-string), which
 * percent-decodes it (and prefers a `?password=` parameter). `new URL(url).password` is still encoded: a password with
 * `/`, `=`, `@`, ... set from it (ALTER ROLE) would not be the one the pool then sends.
 */
export function loginPassword(url: string): string {
  return parse(url).password ?? '';
}
