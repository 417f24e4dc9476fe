import { describe, expect, it } from '@jest/globals';
import jwt from 'jsonwebtoken';
import { ConfigError, loadConfig } from '../../src/platform/config/config.js';
import { verifyExternalToken } from '../../src/modules/auth/external-token.js';

/** Config is validated at boot; a bad variable stops the process with a message naming it. */
describe('config validation', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen', API_DATABASE_PASSWORD: 'not-the-development-one' };
  const fails = (env: Record<string, string | undefined>, variable: RegExp) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(variable);
  };

  it('accepts a minimal valid environment and derives the runtime login URL', () => {
    const config = loadConfig(base);
    expect(config.databaseUrl).toBe(base.DATABASE_URL);
    expect(new URL(config.apiDatabaseUrl).username).toBe('omnizen_api');
    expect(config.redisUrl).toBeUndefined();
  });

  it('refuses outbound requests to private networks by default in production only', () => {
    const production = { ...base, NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'p'.repeat(40) };
    expect(loadConfig(production).outbound.allowPrivateNetworks).toBe(false);
    expect(loadConfig(base).outbound.allowPrivateNetworks).toBe(true);
    expect(loadConfig({ ...production, OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'true' }).outbound.allowPrivateNetworks).toBe(true);
  });

  it('names a missing DATABASE_URL', () => fails({ NODE_ENV: 'test' }, /DATABASE_URL is required/));
  it('names a DATABASE_URL that is not a PostgreSQL URL', () => fails({ ...base, DATABASE_URL: 'mysql://x@y/z' }, /DATABASE_URL must use postgres:/));
  it('names a malformed REDIS_URL', () => fails({ ...base, REDIS_URL: 'not a url' }, /REDIS_URL is not a valid URL/));
  it('names a REDIS_URL of the wrong scheme', () => fails({ ...base, REDIS_URL: 'http://127.0.0.1:6379' }, /REDIS_URL must use redis:/));
  it('names a short SUPABASE_JWT_SECRET in production', () =>
    fails({ ...base, NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'short' }, /SUPABASE_JWT_SECRET must be at least 32 characters/));
  it('requires SUPABASE_JWT_SECRET in production (no development default)', () =>
    fails({ ...base, NODE_ENV: 'production' }, /SUPABASE_JWT_SECRET is required in production/));
  it('names a bad STRIPE_PRICES entry', () => fails({ ...base, STRIPE_PRICES: 'price_1=omnizen_pro' }, /STRIPE_PRICES entry "price_1=omnizen_pro"/));
  it('parses good STRIPE_PRICES', () => {
    expect(loadConfig({ ...base, STRIPE_PRICES: 'price_1=omnizen:pro, price_2=securevault:team' }).billing.stripePrices)
      .toEqual({ price_1: { app: 'omnizen', plan: 'pro' }, price_2: { app: 'securevault', plan: 'team' } });
  });
  it('names a non-integer PORT', () => fails({ ...base, PORT: 'eighty' }, /PORT must be an integer/));
  // README "Configuration": NEXTAUTH_SECRET is optional in production; without it NextAuth tokens are refused, naming it
  it('starts in production without NEXTAUTH_SECRET and then refuses NextAuth tokens (401 naming NEXTAUTH_SECRET)', () => {
    const config = loadConfig({ ...base, NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'p'.repeat(40) });
    expect(config.auth.nextAuthSecret).toBeUndefined();
    const token = jwt.sign({ sub: 'hub-user', email: 'a@example.com' }, 'n'.repeat(40), { algorithm: 'HS256', expiresIn: 60 });
    let error: unknown;
    try {
      verifyExternalToken(config, token, 'nextauth');
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ status: 401, code: 'auth.unauthorized', message: expect.stringMatching(/NEXTAUTH_SECRET is not configured/) });
    // with it set, the same kind of token is verified against it
    const withSecret = loadConfig({ ...base, NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'p'.repeat(40), NEXTAUTH_SECRET: 'n'.repeat(40) });
    expect(verifyExternalToken(withSecret, token, 'nextauth')).toMatchObject({ provider: 'nextauth', email: 'a@example.com' });
  });
  it('names a short NEXTAUTH_SECRET in production', () =>
    fails({ ...base, NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'p'.repeat(40), NEXTAUTH_SECRET: 'short' }, /NEXTAUTH_SECRET must be at least 32 characters/));

  it('keeps APP_URL without a trailing slash (links are APP_URL + a path starting with /)', () => {
    expect(loadConfig({ ...base, APP_URL: 'https://app.example.com/' }).billing.appUrl).toBe('https://app.example.com');
    expect(loadConfig({ ...base, APP_URL: 'https://example.com/app//' }).billing.appUrl).toBe('https://example.com/app');
    expect(loadConfig(base).billing.appUrl).toBe('http://localhost:3000');
  });
  it('names an unknown NODE_ENV', () => fails({ ...base, NODE_ENV: 'staging' }, /NODE_ENV must be development, test or production/));
  it('names a malformed boolean', () => fails({ ...base, AUTH_COOKIES: 'maybe' }, /AUTH_COOKIES must be true or false/));
  it('needs CORS_ORIGINS with AUTH_COOKIES=true (cookie-mode writes must come from an allowed origin)', () =>
    fails({ ...base, AUTH_COOKIES: 'true' }, /AUTH_COOKIES=true needs CORS_ORIGINS/));
  it('sets database timeouts, with a lock timeout shorter than the statement timeout', () => {
    expect(loadConfig(base).database).toEqual({ connectTimeoutMs: 10_000, statementTimeoutMs: 30_000, localStatementTimeoutMs: 5_000, lockTimeoutMs: 5_000, idleInTransactionTimeoutMs: 60_000, preparedStatements: true });
    expect(loadConfig(base).jobs).toMatchObject({ claimTimeoutMs: 300_000, enqueueTimeoutMs: 5_000 });
    expect(loadConfig(base).shutdownGraceMs).toBe(25_000);
    fails({ ...base, DATABASE_LOCK_TIMEOUT_MS: '30000' }, /DATABASE_LOCK_TIMEOUT_MS must be shorter than DATABASE_STATEMENT_TIMEOUT_MS \(30000\)/);
    fails({ ...base, DATABASE_STATEMENT_TIMEOUT_MS: '0' }, /DATABASE_STATEMENT_TIMEOUT_MS must be an integer >= 1/);
    fails({ ...base, SHUTDOWN_GRACE_MS: 'soon' }, /SHUTDOWN_GRACE_MS must be an integer >= 0/);
    fails({ ...base, JOBS_CLAIM_TIMEOUT_MS: '-1' }, /JOBS_CLAIM_TIMEOUT_MS must be an integer >= 1/);
  });
  it('bounds the semantic queries running at once: 4 in the process, 2 of one organization, at most the process\'s', () => {
    expect(loadConfig(base).ai).toMatchObject({ semanticMaxConcurrentQueries: 4, semanticMaxConcurrentQueriesPerOrg: 2 });
    expect(loadConfig({ ...base, SEMANTIC_MAX_CONCURRENT_QUERIES: '1' }).ai).toMatchObject({ semanticMaxConcurrentQueries: 1, semanticMaxConcurrentQueriesPerOrg: 1 });
    expect(loadConfig({ ...base, SEMANTIC_MAX_CONCURRENT_QUERIES: '10', SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG: '10' }).ai).toMatchObject({ semanticMaxConcurrentQueries: 10, semanticMaxConcurrentQueriesPerOrg: 10 });
    fails({ ...base, SEMANTIC_MAX_CONCURRENT_QUERIES: '0' }, /SEMANTIC_MAX_CONCURRENT_QUERIES must be an integer from 1 to 1000, got "0"/);
    fails({ ...base, SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG: '5' }, /SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG must be an integer from 1 to 4, got "5"/);
    fails({ ...base, SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG: 'two' }, /SEMANTIC_MAX_CONCURRENT_QUERIES_PER_ORG must be an integer from 1 to 4/);
  });
  it('names a secrets key of the wrong length', () =>
    fails({ ...base, SECRETS_KEYS: `k1:${Buffer.alloc(16).toString('base64')}` }, /SECRETS_KEYS key "k1" must be 32 bytes/));
  it('names a PORT out of range', () => fails({ ...base, PORT: '99999' }, /PORT must be an integer from 1 to 65535, got "99999"/));
  it('names an unknown LOG_LEVEL', () => fails({ ...base, LOG_LEVEL: 'verbose' }, /LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/));
  it('names a HOST that is not an address or a host name', () => fails({ ...base, HOST: 'http://0.0.0.0' }, /HOST must be an IP address or a host name/));
  it('names a STRIPE_API_PROTOCOL other than http or https', () => fails({ ...base, STRIPE_API_PROTOCOL: 'ftp' }, /STRIPE_API_PROTOCOL must be one of http, https, got "ftp"/));
  it('names a CORS_ORIGINS entry that is not an origin', () => fails({ ...base, CORS_ORIGINS: 'https://app.example.com/path' }, /CORS_ORIGINS entries must be origins/));
  it('refuses a METRICS_TOKEN shorter than 32 characters, and serves no metrics without one', () => {
    fails({ ...base, METRICS_TOKEN: 'short' }, /METRICS_TOKEN must be at least 32 characters/);
    expect(loadConfig(base).observability.metricsToken).toBeUndefined();
  });
  it('refuses the development secrets of .env.example in production', () => {
    const production = { ...base, NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'p'.repeat(40), API_DATABASE_PASSWORD: 'a-real-password' };
    expect(loadConfig(production).auth.supabaseJwtSecret).toBe('p'.repeat(40));
    fails({ ...production, SUPABASE_JWT_SECRET: 'dev-only-supabase-jwt-secret-change-me-0000' }, /SUPABASE_JWT_SECRET is the development value of .env.example/);
    fails({ ...production, NEXTAUTH_SECRET: 'dev-only-nextauth-secret-change-me-000000000' }, /NEXTAUTH_SECRET is the development value of .env.example/);
    fails({ ...production, API_DATABASE_PASSWORD: 'omnizen_api_dev' }, /API_DATABASE_PASSWORD is the development value of .env.example/);
    fails({ ...production, API_DATABASE_PASSWORD: undefined }, /API_DATABASE_PASSWORD is the development value/);
    // outside production they are the defaults
    expect(loadConfig(base).auth.nextAuthSecret).toMatch(/^dev-only-/);
  });
  it('reads CORS_ORIGINS and API_DOCS', () => {
    const config = loadConfig({ ...base, CORS_ORIGINS: 'https://app.example.com, http://localhost:5173', API_DOCS: 'false' });
    expect(config.http).toEqual({ corsOrigins: ['https://app.example.com', 'http://localhost:5173'], apiDocs: false, trustProxy: ['loopback'] });
    expect(loadConfig(base).http).toEqual({ corsOrigins: [], apiDocs: true, trustProxy: ['loopback'] });
  });
  it('reads TRUST_PROXY: true, false, or addresses, CIDR ranges and range names; never a hop count', () => {
    const trusted = (value: string) => loadConfig({ ...base, TRUST_PROXY: value }).http.trustProxy;
    expect(trusted('true')).toBe(true);
    expect(trusted('false')).toBe(false);
    expect(trusted(' 10.0.0.0/8, 192.0.2.7,2001:db8::/32, uniquelocal ')).toEqual(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', 'uniquelocal']);
    fails({ ...base, TRUST_PROXY: '1' }, /TRUST_PROXY cannot be a hop count/);
    for (const bad of ['10.0.0.0/33', '10.0.0.0/0', '2001:db8::/129', 'lb.internal', '10.0.0.1/8/1', 'loopback,10.0.0.1/x']) {
      fails({ ...base, TRUST_PROXY: bad }, /^TRUST_PROXY must be true, false, or a comma-separated list/);
    }
  });
});
