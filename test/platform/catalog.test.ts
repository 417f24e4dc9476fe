import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { listMigrations } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { privilegeDifferences, privilegesHeld } from './privileges.js';
import { NOT_FROM_EXTENSION, SCHEMAS_PARAM } from './schemas.js';

/**
 * The catalog test: whatever a module adds to our schemas, RLS is on and forced, policies name
 * their roles, the API's runtime login has no way around RLS, views run as the invoker and
 * SECURITY DEFINER functions pin search_path.
 */
describe('catalog: row level security and the runtime login', () => {
  let db: TestDatabase;
  let tables: { name: string; rls: boolean; forced: boolean; policies: number }[];

  beforeAll(async () => {
    db = await createTestDatabase();
    tables = (await db.admin.query(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
              (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('c.oid', 'pg_class')}
       ORDER BY 1`, SCHEMAS_PARAM)).rows;
  });
  afterAll(() => db.drop());

  it('finds the tables it checks', () => {
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['core."User"', 'core.organizations', 'core.audit_logs']));
  });

  it('has row level security enabled and forced on every table', () => {
    expect(tables.filter((t) => !t.rls).map((t) => `${t.name}: RLS not enabled`)).toEqual([]);
    expect(tables.filter((t) => !t.forced).map((t) => `${t.name}: RLS not forced`)).toEqual([]);
  });

  it('has at least one policy on every table', () => {
    expect(tables.filter((t) => t.policies === 0).map((t) => `${t.name}: no policy`)).toEqual([]);
  });

  it('names the roles of every policy (none applies to PUBLIC)', async () => {
    const { rows } = await db.admin.query(
      `SELECT format('%I.%I policy %I', n.nspname, c.relname, p.polname) AS policy
       FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = ANY($1) AND 0 = ANY (p.polroles) ORDER BY 1`, SCHEMAS_PARAM);
    expect(rows.map((r) => `${r.policy} applies to PUBLIC`)).toEqual([]);
  });

  it('gives the runtime login omnizen_api no superuser, no BYPASSRLS and no ownership', async () => {
    const { rows: [role] } = await db.admin.query(
      `SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit FROM pg_roles WHERE rolname = 'omnizen_api'`);
    expect(role).toEqual({ rolsuper: false, rolbypassrls: false, rolcreaterole: false, rolcreatedb: false, rolinherit: false });
    const { rows: owned } = await db.admin.query(
      `SELECT 'schema ' || n.nspname AS object FROM pg_namespace n
         WHERE n.nspname = ANY($1) AND n.nspowner = 'omnizen_api'::regrole
       UNION ALL
       SELECT format('relation %I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($1) AND c.relowner = 'omnizen_api'::regrole
       UNION ALL
       SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY($1) AND p.proowner = 'omnizen_api'::regrole
       UNION ALL
       SELECT format('type %s', t.oid::regtype) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = ANY($1) AND t.typowner = 'omnizen_api'::regrole`, SCHEMAS_PARAM);
    expect(owned.map((r) => `omnizen_api owns ${r.object}`)).toEqual([]);
  });

  it('lets omnizen_api switch only into anon and authenticated (never service_role or an owner)', async () => {
    const { rows } = await db.admin.query(
      `SELECT m.roleid::regrole::text AS granted FROM pg_auth_members m WHERE m.member = 'omnizen_api'::regrole ORDER BY 1`);
    expect(rows.map((r) => r.granted)).toEqual(['anon', 'authenticated']);
    // and transitively: none of the roles it can reach bypasses RLS or owns our objects
    const { rows: reach } = await db.admin.query(
      `SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r
       WHERE pg_has_role('omnizen_api', r.oid, 'MEMBER') AND (r.rolsuper OR r.rolbypassrls)`);
    expect(reach).toEqual([]);
  });

  it('denies omnizen_api every table when it has not switched role', async () => {
    const api = new pg.Client({ connectionString: db.apiUrl });
    await api.connect();
    const readable: string[] = [];
    try {
      for (const t of tables) {
        try {
          await api.query(`SELECT 1 FROM ${t.name} LIMIT 1`);
          readable.push(`${t.name}: readable by omnizen_api without SET ROLE`);
        } catch (err) {
          if ((err as { code?: string }).code !== '42501') readable.push(`${t.name}: unexpected ${(err as Error).message}`);
        }
      }
    } finally {
      await api.end();
    }
    expect(readable).toEqual([]);
  });

  it('refuses to let omnizen_api become service_role', async () => {
    const api = new pg.Client({ connectionString: db.apiUrl });
    await api.connect();
    try {
      await expect(api.query('SET ROLE service_role')).rejects.toMatchObject({ code: '42501' });
      await expect(api.query(`SELECT public.begin_request('{}', 'service_role')`)).rejects.toMatchObject({ code: '42501' });
    } finally {
      await api.end();
    }
  });

  it('has security_invoker on every view in our schemas', async () => {
    const { rows } = await db.admin.query(
      `SELECT format('%I.%I', n.nspname, c.relname) AS view FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'v' AND n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('c.oid', 'pg_class')}
         AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'] OR c.reloptions @> ARRAY['security_invoker=on']
                          OR c.reloptions @> ARRAY['security_invoker=1'], false)
       ORDER BY 1`, SCHEMAS_PARAM);
    expect(rows.map((r) => `${r.view} lacks security_invoker=true`)).toEqual([]);
  });

  it('grants no request role a materialized view (they bypass RLS)', async () => {
    const { rows } = await db.admin.query(
      `SELECT format('%I.%I readable by %s', n.nspname, c.relname, r) AS leak
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'omnizen_analyst']) AS r
       WHERE c.relkind = 'm' AND n.nspname = ANY($1) AND has_table_privilege(r, c.oid, 'SELECT')`, SCHEMAS_PARAM);
    expect(rows.map((r) => r.leak)).toEqual([]);
  });

  it('lets only the runtime login call begin_request (it sets the claims and role of a request)', async () => {
    const { rows } = await db.admin.query(
      `SELECT r AS role, has_function_privilege(r, 'public.begin_request(text, text)', 'EXECUTE') AS can
       FROM unnest(ARRAY['omnizen_api', 'anon', 'authenticated', 'service_role', 'omnizen_analyst']) AS r`);
    expect(Object.fromEntries(rows.map((r) => [r.role, r.can]))).toEqual({
      omnizen_api: true, anon: false, authenticated: false, service_role: false, omnizen_analyst: false,
    });
  });

  it('holds exactly the allow-listed privileges on every schema, table, view, sequence, column and function (privileges.ts)', async () => {
    expect(privilegeDifferences(await privilegesHeld(db.admin))).toEqual([]);
  });

  it('lets the allow-list check fail: a grant beyond it is named', async () => {
    const held = await privilegesHeld(db.admin);
    held['table public.providers'] = { ...held['table public.providers'], authenticated: 'DELETE,INSERT,SELECT,TRUNCATE,UPDATE' };
    expect(privilegeDifferences(held)).toEqual(['table public.providers: authenticated holds TRUNCATE (not in the allow-list)']);
  });

  it('revokes every function created after 20261201000100 from anon, authenticated and service_role by name, not only from PUBLIC', async () => {
    // Default privileges (Supabase's in public; an operator's, per Supabase's guide to exposing a schema, in core or ai)
    // grant a new function to those roles by name: REVOKE ... FROM PUBLIC leaves those grants. 20261201000100 revoked
    // every grant of the objects it found; a function created since is covered only by a REVOKE of its own that names
    // them, in the migration that created it or a later one.
    const { rows } = await db.admin.query<{ fn: string }>(
      `SELECT DISTINCT format('%s.%s/%s', n.nspname, p.proname, p.pronargs) AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = ANY($1) AND n.nspname <> 'public' AND ${NOT_FROM_EXTENSION('p.oid', 'pg_proc')}`, SCHEMAS_PARAM);
    // `name/arguments` of the function whose argument list opens at `open`: overloads are told apart by how many
    // arguments they take (pg_proc.pronargs: OUT ones not counted)
    const signature = (text: string, name: string, open: number) => {
      const args: string[] = [];
      let depth = 0, quoted = false, arg = '';
      for (let i = open; i < text.length; i++) {
        const ch = text[i];
        if (ch === "'") quoted = !quoted;
        else if (!quoted && ch === '(' && ++depth === 1) continue;
        else if (!quoted && ch === ')' && --depth === 0) break;
        else if (!quoted && ch === ',' && depth === 1) {
          args.push(arg);
          arg = '';
          continue;
        }
        arg += ch;
      }
      args.push(arg);
      return `${name.toLowerCase()}/${args.filter((a) => a.trim() && !/^\s*OUT\s/i.test(a)).length}`;
    };
    const named = ['anon', 'authenticated', 'service_role'];
    const created = new Map<string, number>(); // function -> index of the migration that last created it
    const revoked = new Map<string, Set<string>>(); // function -> roles revoked by name since then
    const migrations = listMigrations().filter((m) => !m.name.startsWith('supabase/'));
    migrations.forEach((m, i) => {
      const text = m.sql.replace(/--[^\n]*/g, '');
      for (const c of text.matchAll(/CREATE\s+(OR\s+REPLACE\s+)?FUNCTION\s+([\w.]+)\s*\(/gi)) {
        const fn = signature(text, c[2], c.index + c[0].length - 1);
        if (c[1] && created.has(fn)) continue; // a replaced function keeps its privileges
        created.set(fn, i);
        revoked.set(fn, new Set());
      }
      for (const r of text.matchAll(/REVOKE\s+(?:ALL|EXECUTE)\s+ON\s+FUNCTION\s+([\s\S]*?)\s+FROM\s+([^;]+);/gi)) {
        const roles = r[2].split(',').map((role) => role.trim().toLowerCase());
        for (const f of r[1].matchAll(/([\w.]+)\s*\(/g)) {
          const fn = signature(r[1], f[1], f.index + f[0].length - 1);
          for (const role of roles) revoked.get(fn)?.add(role);
        }
      }
    });
    const sweep = migrations.findIndex((m) => m.name === '20261201000100_supabase_privileges');
    const gaps = rows.map((r) => r.fn).filter((fn) => (created.get(fn) ?? -1) > sweep)
      .filter((fn) => !named.every((role) => revoked.get(fn)!.has(role)))
      .map((fn) => `${fn} (created by ${migrations[created.get(fn)!].name}) is revoked from ${[...revoked.get(fn)!].join(', ') || 'no role'} only`);
    expect(gaps.sort()).toEqual([]);
  });

  it('sets search_path = \'\' on every SECURITY DEFINER function in our schemas', async () => {
    const { rows } = await db.admin.query(
      `SELECT p.oid::regprocedure::text AS fn, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE p.prosecdef AND n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('p.oid', 'pg_proc')}
       ORDER BY 1`, SCHEMAS_PARAM);
    expect(rows.length).toBeGreaterThan(0);
    const bad = rows.filter((r) => !(r.proconfig ?? []).includes('search_path=""'));
    expect(bad.map((r) => `${r.fn} is SECURITY DEFINER without search_path='' (has ${JSON.stringify(r.proconfig)})`)).toEqual([]);
  });
});
