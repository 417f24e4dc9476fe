import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { TestDatabase } from './database.js';

/**
 * A login like the authenticator of Supabase's REST API (PostgREST): no rights of its own, it switches into anon or
 * authenticated per request with the token's claims, never through begin_request. For tests of what a REST caller
 * may read and write.
 */
export interface RestGateway {
  /** One REST request: the claims and role set for the transaction as PostgREST sets them; committed if it succeeds. */
  rest(role: 'anon' | 'authenticated', claims: Record<string, unknown>, sql: string, params?: unknown[]): Promise<any[]>;
  /** Closes the pool and drops the login. */
  end(): Promise<void>;
}

export async function restGateway(db: TestDatabase): Promise<RestGateway> {
  const login = `omnizen_t_rest_${randomBytes(4).toString('hex')}`;
  await db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'rest-test' NOINHERIT IN ROLE anon, authenticated`);
  const url = new URL(db.url);
  url.username = login;
  url.password = 'rest-test';
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on('error', () => undefined);
  return {
    async rest(role, claims, sql, params = []) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ ...claims, role })]);
        await c.query(`SET LOCAL ROLE ${role}`);
        const result = await c.query(sql, params);
        await c.query('COMMIT');
        return result.rows;
      } catch (err) {
        await c.query('ROLLBACK');
        throw err;
      } finally {
        c.release();
      }
    },
    async end() {
      await pool.end();
      const root = new pg.Client({ connectionString: process.env.OMNIZEN_TEST_SERVER_URL });
      await root.connect();
      await root.query(`DROP ROLE IF EXISTS ${login}`);
      await root.end();
    },
  };
}
