import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withDatabase } from '../../src/platform/database/database-url.js';
import { migrate } from '../../src/platform/database/migrator.js';
import { until } from './throwaway-servers.js';

const API_LOGIN = { user: 'omnizen_api', password: 'omnizen_api_test' };

/** A database of this test file's own, cloned from the migrated template. */
export interface TestDatabase {
  name: string;
  /** owner connection URL (for migrations and setup through the owner) */
  url: string;
  /** runtime login URL (omnizen_api) */
  apiUrl: string;
  /** owner pool: test setup and assertions that look past RLS */
  admin: pg.Pool;
  /**
   * runs `sql` in a transaction as `role` with `claims` set the way Supabase's REST API sets a token's: not verified by
   * begin_request, so reads are a member's and no table of the API's schemas takes a write (20270205000900)
   */
  as<T extends pg.QueryResultRow = any>(claims: Record<string, unknown> | null, role: string, sql: string, params?: unknown[]): Promise<T[]>;
  /** runs `sql` in a transaction opened as the API opens a request's: begin_request verifies `claims` on the runtime login */
  asApi<T extends pg.QueryResultRow = any>(claims: Record<string, unknown>, role: 'authenticated' | 'anon', sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/**
 * `server`: another PostgreSQL than the run's shared one (a fault test's own, which has no template):
 * the database is migrated there instead of cloned. `timeZone`: the database's TimeZone setting, which every session
 * opened on it starts with (as a Supabase project's can be changed), instead of the server's.
 */
export async function createTestDatabase(options: { template?: string | null; server?: string; timeZone?: string } = {}): Promise<TestDatabase> {
  const server = options.server ?? process.env.OMNIZEN_TEST_SERVER_URL;
  if (!server) throw new Error('run the tests through jest (globalSetup prepares the database server)');
  const name = `omnizen_t_${process.env.OMNIZEN_TEST_RUN}_${randomBytes(4).toString('hex')}`;
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  const template = options.server ? null : options.template === undefined ? process.env.OMNIZEN_TEST_TEMPLATE : options.template;
  await root.query(template ? `CREATE DATABASE "${name}" TEMPLATE "${template}"` : `CREATE DATABASE "${name}"`);
  if (options.timeZone) await root.query(`ALTER DATABASE "${name}" SET timezone TO ${root.escapeLiteral(options.timeZone)}`);
  await root.end();
  const url = withDatabase(server, name);
  if (options.server) await migrate(url, { apiPassword: API_LOGIN.password, log: () => undefined });
  const admin = new pg.Pool({ connectionString: url, max: 4 });
  const runtime = new pg.Pool({ connectionString: withDatabase(server, name, API_LOGIN), max: 4 });
  // an idle connection cut by the server is replaced by the pool; without a listener it would crash the file
  for (const pool of [admin, runtime]) pool.on('error', () => undefined);
  async function inTransaction(open: (c: pg.PoolClient) => Promise<unknown>, sql: string, params: unknown[]) {
    const c = await runtime.connect();
    try {
      await c.query('BEGIN');
      await open(c);
      const r = await c.query(sql, params);
      await c.query('COMMIT');
      return r.rows;
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  }
  return {
    name,
    url,
    apiUrl: withDatabase(server, name, API_LOGIN),
    admin,
    as(claims, role, sql, params = []) {
      return inTransaction((c) => c.query(`SELECT set_config('request.jwt.claims', $1, true), set_config('role', $2, true)`, [claims ? JSON.stringify(claims) : '', role]), sql, params);
    },
    asApi(claims, role, sql, params = []) {
      return inTransaction((c) => c.query('SELECT org_id FROM public.begin_request($1, $2)', [JSON.stringify({ ...claims, role: claims.role ?? role }), role]), sql, params);
    },
    async drop() {
      await admin.end();
      await runtime.end();
      const r = new pg.Client({ connectionString: server });
      await r.connect();
      await r.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await r.end();
    },
  };
}

/**
 * A connection of the API login (`apiUrl`) with an open transaction as `authenticated` carrying `claims`, verified by
 * begin_request as before a route runs, for tests that hold a transaction in flight while another runs; `pid`
 * is its backend (to watch it wait in pg_stat_activity). The caller commits or rolls back, and ends the client
 * (it is pushed to `clients`).
 */
export async function openTenantTransaction(apiUrl: string, claims: { sub: string; org_id: string }, clients: pg.Client[]): Promise<{ c: pg.Client; pid: number }> {
  const c = new pg.Client({ connectionString: apiUrl });
  await c.connect();
  clients.push(c);
  await c.query('BEGIN');
  await c.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ ...claims, role: 'authenticated' })]);
  const { rows: [{ pid }] } = await c.query('SELECT pg_backend_pid() AS pid');
  return { c, pid: pid as number };
}

/**
 * Resolves once `count` backends of the database of `admin` wait for an advisory lock or a named lock (core.xact_lock: a
 * row of core.lock_rows, so a wait for the holder's transaction or for the row); fails (does not hang) when they never do.
 */
export async function advisoryLockWaiters(admin: pg.Pool, count = 1): Promise<void> {
  await until(`${count} backend(s) wait for an advisory or named lock`, async () => (await admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
       AND wait_event IN ('advisory', 'transactionid', 'tuple')`)).rows[0].n >= count);
}

/**
 * Each table's row count and content (an md5 of its rows as text, in order), by name: what a refused request must leave
 * as it was. `tables`: those (schema-qualified), else every base table; `orgId`: only that organization's rows.
 */
export async function tableContents(admin: pg.Pool, o: { tables?: string[]; orgId?: string } = {}): Promise<Record<string, string>> {
  const tables = o.tables ?? (await admin.query<{ name: string }>(`
    SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_schema, table_name`)).rows.map((r) => r.name);
  const out: Record<string, string> = {};
  for (const table of tables) {
    const { rows } = await admin.query(`SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS v FROM ${table} x`
      + (o.orgId ? ' WHERE x.org_id = $1' : ''), o.orgId ? [o.orgId] : []);
    out[table.replace(/"/g, '')] = rows[0].v;
  }
  return out;
}
