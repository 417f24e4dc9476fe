import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../src/platform/config/config.js';

/** Config is validated at boot; a bad variable stops the process with a message naming it. */
describe('config validation', () => {
  const base = { NODE_ENV: 'test', DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/omnizen' };
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
  it('names an unknown NODE_ENV', () => fails({ ...base, NODE_ENV: 'staging' }, /NODE_ENV must be development, test or production/));
  it('names a malformed boolean', () => fails({ ...base, AUTH_COOKIES: 'maybe' }, /AUTH_COOKIES must be true or false/));
  it('parses CORS_ORIGINS into origins, and names an entry that is not one', () => {
    expect(loadConfig({ ...base, CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).http.corsOrigins)
      .toEqual(['https://app.example.com', 'http://localhost:5173']);
    expect(loadConfig(base).http.corsOrigins).toEqual([]);
    fails({ ...base, CORS_ORIGINS: 'https://app.example.com/login' }, /CORS_ORIGINS entry "https:\/\/app.example.com\/login" must be an origin/);
    fails({ ...base, CORS_ORIGINS: 'app.example.com' }, /CORS_ORIGINS entry "app.example.com"/);
  });
  it('needs CORS_ORIGINS with AUTH_COOKIES=true (cookie-mode writes must come from an allowed origin)', () =>
    fails({ ...base, AUTH_COOKIES: 'true' }, /AUTH_COOKIES=true needs CORS_ORIGINS/));
  it('sets database timeouts, with a lock timeout shorter than the statement timeout', () => {
    expect(loadConfig(base).database).toEqual({ connectTimeoutMs: 10_000, statementTimeoutMs: 30_000, lockTimeoutMs: 5_000, idleInTransactionTimeoutMs: 60_000 });
    expect(loadConfig(base).jobs).toMatchObject({ claimTimeoutMs: 300_000, enqueueTimeoutMs: 5_000 });
    expect(loadConfig(base).shutdownGraceMs).toBe(25_000);
    fails({ ...base, DATABASE_LOCK_TIMEOUT_MS: '30000' }, /DATABASE_LOCK_TIMEOUT_MS must be shorter than DATABASE_STATEMENT_TIMEOUT_MS \(30000\)/);
    fails({ ...base, DATABASE_STATEMENT_TIMEOUT_MS: '0' }, /DATABASE_STATEMENT_TIMEOUT_MS must be an integer >= 1/);
    fails({ ...base, SHUTDOWN_GRACE_MS: 'soon' }, /SHUTDOWN_GRACE_MS must be an integer >= 0/);
    fails({ ...base, JOBS_CLAIM_TIMEOUT_MS: '-1' }, /JOBS_CLAIM_TIMEOUT_MS must be an integer >= 1/);
  });
  it('names a secrets key of the wrong length', () =>
    fails({ ...base, SECRETS_KEYS: `k1:${Buffer.alloc(16).toString('base64')}` }, /SECRETS_KEYS key "k1" must be 32 bytes/));
});
