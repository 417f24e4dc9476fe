import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { restGateway, type RestGateway } from '../support/rest-gateway.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, verifyEmailOf, type TestUser } from '../support/factories.js';
import { testKeys } from '../integrations/keys.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';

/**
 * What a caller of Supabase's REST API (PostgREST: its own login, switching into anon or authenticated with the
 * token's claims) could do to tables and functions that only the API's own transactions are meant to reach
 * (migration 20270202000200):
 *  * core.outbox and core.audit_logs: a viewer's token inserted a domain event `organization.deleted` (the relay
 *    then canceled the organization's Stripe subscription, fanned it out to webhooks) or audit rows of their choosing;
 *  * core.personal_data_key / personal_data_keys_by_id: an anonymous caller planted the key of any person (an
 *    attacker-known `{"unwrapped": ...}` one, or junk that failed every later audit entry about them) and read keys.
 * The API's flows that write those rows outside the request's organization (creating an organization, accepting an
 * invitation) keep working.
 * And every other table of the API's schemas (migration 20270205000900): a member's token passed the tables' write
 * policies as well as the API's transaction did, so an admin could change roles or the organization unaudited and an
 * accountant reopen a closed period or post past the plan's gates (rpc/post_journal_entry).
 */
describe('the Supabase REST path cannot write outbox jobs, audit rows, personal data keys or any table the API writes', () => {
  let t: TestApp;
  let gateway: RestGateway;
  let owner: TestUser;
  let viewer: TestUser;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp({ REDIS_URL: '', SECRETS_KEYS: testKeys('k1').env });
    gateway = await restGateway(t.db);
    owner = await verifyEmailOf(t, await registerUser(t, 'owner'));
    viewer = await registerUser(t, 'viewer');
    orgId = await createOrg(t, owner, 'Targeted Co');
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')`, [orgId, viewer.id]);
  });
  afterAll(async () => {
    await gateway?.end();
    await t?.close();
  });

  const rest = (role: 'anon' | 'authenticated', claims: Record<string, unknown>, sql: string, params: unknown[] = []) => gateway.rest(role, claims, sql, params);
  // a Supabase access token names the user, not an organization; a custom claim could name one
  const viewerToken = () => ({ sub: viewer.id, email: viewer.email, aud: 'authenticated' });
  const emailSubject = (email: string) => `email:${createHash('sha256').update(email.toLowerCase()).digest('hex')}`;

  it('refuses a member\'s token an outbox row (a forged organization.deleted) and an audit row, with or without an org_id claim', async () => {
    const forgedEvent = JSON.stringify({ id: randomUUID(), type: 'organization.deleted', version: 1, occurredAt: new Date().toISOString(),
      payload: { organizationId: orgId, accountType: 'business', reason: 'deleted' } });
    for (const claims of [viewerToken(), { ...viewerToken(), org_id: orgId }]) {
      await expect(rest('authenticated', claims, `INSERT INTO core.outbox (org_id, topic, payload) VALUES ($1, 'domain_event', $2::jsonb)`, [orgId, forgedEvent]))
        .rejects.toMatchObject({ code: '42501' });
      await expect(rest('authenticated', claims,
        `INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type, entity_id) VALUES ($1::uuid, $2, 'user', 'organization.deleted', 'organization', $1::text)`,
        [orgId, viewer.id])).rejects.toMatchObject({ code: '42501' });
    }
    const { rows: [written] } = await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'organization.deleted') AS events,
              (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND actor_id = $2) AS audits,
              (SELECT deleted_at FROM core.organizations WHERE id = $1) AS deleted_at`, [orgId, viewer.id]);
    expect(written).toEqual({ events: 0, audits: 0, deleted_at: null });
  });

  it('still audits and emits through the API where the row\'s organization is not yet the request\'s: creating an organization, accepting an invitation', async () => {
    const created = await createOrg(t, viewer, 'Viewer Ventures');
    expect((await t.db.admin.query(`SELECT actor_id FROM core.audit_logs WHERE org_id = $1 AND action = 'organization.created'`, [created])).rows)
      .toEqual([{ actor_id: viewer.id }]);

    await onEnterprisePlan(t, orgId);
    const invitee = await verifyEmailOf(t, await registerUser(t, 'invitee'));
    const { body: invitation } = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: invitee.email, role: 'member' }).expect(201);
    await t.http.post('/v1/invitations/accept').set(invitee.auth).send({ orgId, token: invitation.token }).expect(200);
    const { rows: [joined] } = await t.db.admin.query(
      `SELECT (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND action = 'invitation.accepted' AND actor_id = $2) AS audits,
              (SELECT count(*)::int FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'member.joined' AND payload->'payload'->>'userId' = $2) AS events,
              (SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2) AS role`, [orgId, invitee.id]);
    expect(joined).toEqual({ audits: 1, events: 1, role: 'member' });
  });

  it('refuses a signed-in token the named locks (core is exposed): no lock row added, no gate of another organization held', async () => {
    const [{ n: before }] = (await t.db.admin.query(`SELECT count(*)::int AS n FROM core.lock_rows`)).rows;
    for (const fn of ['xact_lock', 'xact_lock_shared', 'try_xact_lock']) {
      await expect(rest('authenticated', viewerToken(), `SELECT core.${fn}($1)`, [`finance.posting:${orgId}`]))
        .rejects.toMatchObject({ code: '42501', message: 'named locks are taken by the API only' });
      await expect(rest('authenticated', viewerToken(), `SELECT core.${fn}($1)`, [`spam:${randomUUID()}`])).rejects.toMatchObject({ code: '42501' });
    }
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM core.lock_rows`)).rows[0].n).toBe(before);
  });

  it('refuses anon and a member\'s token the personal data keys: no key planted, none handed out', async () => {
    const target = `target.${randomBytes(3).toString('hex')}@example.test`;
    const subject = emailSubject(target);
    const known = { unwrapped: randomBytes(32).toString('base64') };
    for (const [role, claims] of [['anon', {}], ['authenticated', viewerToken()]] as const) {
      await expect(rest(role, claims, `SELECT * FROM core.personal_data_key($1::uuid, $2, $3::jsonb)`, [randomUUID(), subject, JSON.stringify(known)]))
        .rejects.toMatchObject({ code: '42501' });
    }
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM core.personal_data_keys WHERE subject = $1', [subject])).rows).toEqual([{ n: 0 }]);

    // the API seals the invitee's e-mail with a key the secret box wraps, and opens it for the owner
    const { body: invitation } = await t.http.post(`/v1/orgs/${orgId}/invitations`).set(owner.auth).send({ email: target, role: 'viewer' }).expect(201);
    const { rows: [key] } = await t.db.admin.query('SELECT id, wrapped FROM core.personal_data_keys WHERE subject = $1', [subject]);
    expect(key.wrapped).toEqual({ ciphertext: expect.any(String), iv: expect.any(String), tag: expect.any(String), kid: 'k1' });
    const audit = await t.http.get(`/v1/orgs/${orgId}/audit-logs?action=invitation.created&entityId=${invitation.id}`).set(owner.auth).expect(200);
    expect(audit.body.items.map((e: { after: { email: string } }) => e.after.email)).toEqual([target]);

    for (const [role, claims] of [['anon', {}], ['authenticated', viewerToken()]] as const) {
      await expect(rest(role, claims, `SELECT * FROM core.personal_data_keys_by_id($1::uuid[])`, [[key.id]])).rejects.toMatchObject({ code: '42501' });
    }
  });

  it('takes from the API\'s own transactions only a candidate key of the shapes the application writes', async () => {
    const api = new pg.Client({ connectionString: t.db.apiUrl });
    await api.connect();
    const call = async (candidate: unknown) => {
      await api.query('BEGIN');
      try {
        await api.query(`SELECT org_id FROM public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: owner.id, role: 'authenticated', org_id: orgId })]);
        return (await api.query(`SELECT id FROM core.personal_data_key($1::uuid, $2, $3::jsonb)`, [randomUUID(), `user:${randomUUID()}`, JSON.stringify(candidate)])).rows;
      } finally {
        await api.query('ROLLBACK');
      }
    };
    try {
      for (const junk of [{}, 'a string', { unwrapped: 'not a key' }, { unwrapped: randomBytes(16).toString('base64') },
        { ciphertext: 'x', iv: 'y', tag: 'z' }, { ciphertext: 'x', iv: 'y', tag: 'z', kid: 'k1', extra: 1 }, { ciphertext: 1, iv: 'y', tag: 'z', kid: 'k1' }]) {
        await expect(call(junk)).rejects.toMatchObject({ code: '22023' });
      }
      expect(await call({ unwrapped: randomBytes(32).toString('base64') })).toHaveLength(1);
      expect(await call({ ciphertext: randomBytes(48).toString('base64'), iv: randomBytes(12).toString('base64'), tag: randomBytes(16).toString('base64'), kid: 'k1' })).toHaveLength(1);
    } finally {
      await api.end();
    }
  });

  it('closes every table of the API\'s schemas: a restrictive policy that needs begin_request\'s verified claims on each write `authenticated` is granted', async () => {
    // schema public holds the seed's user-owned tables (integrations, providers), written over REST by their owner
    const { rows } = await t.db.admin.query(`
      WITH writes AS (
        SELECT c.oid, c.oid::regclass::text AS rel, w.cmd
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL (VALUES
          ('INSERT', has_any_column_privilege('authenticated', c.oid, 'INSERT')),
          ('UPDATE', has_any_column_privilege('authenticated', c.oid, 'UPDATE')),
          ('DELETE', has_table_privilege('authenticated', c.oid, 'DELETE'))) AS w(cmd, granted)
        WHERE c.relkind IN ('r', 'p') AND w.granted
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public', 'auth', 'storage', 'extensions'))
      SELECT rel || ' ' || cmd AS open FROM writes w
      WHERE NOT EXISTS (
        SELECT 1 FROM pg_policy p
        WHERE p.polrelid = w.oid AND NOT p.polpermissive AND 'authenticated'::regrole = ANY (p.polroles)
          AND p.polcmd = CASE w.cmd WHEN 'INSERT' THEN 'a' WHEN 'UPDATE' THEN 'w' ELSE 'd' END::"char"
          AND (w.cmd = 'INSERT' OR pg_get_expr(p.polqual, p.polrelid) LIKE '%auth_claims_verified()%')
          AND (w.cmd = 'DELETE' OR pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%auth_claims_verified()%'))
      ORDER BY 1`);
    expect(rows).toEqual([]);
    const { rows: [covered] } = await t.db.admin.query(`SELECT count(DISTINCT polrelid)::int AS n FROM pg_policy WHERE polname LIKE 'rest_path_closed_%'`);
    expect(covered.n).toBeGreaterThan(40);

    // SECURITY DEFINER functions a REST caller may execute: read-only (not VOLATILE, or named here), checking the
    // caller themselves, or the postings (finance.journal_entries takes their row only from a verified caller)
    const readsWhileVolatile = ['finance.entry_json'];
    const postings = ['finance.post_journal_entries', 'finance.post_journal_entry'];
    // the named locks (20270211003700): they refuse any login but the API's in role authenticated (tested above)
    const locks = ['core.try_xact_lock', 'core.xact_lock', 'core.xact_lock_shared'];
    const { rows: unchecked } = await t.db.admin.query(`
      SELECT DISTINCT n.nspname || '.' || p.proname AS fn
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.prosecdef AND p.provolatile = 'v' AND p.prosrc NOT LIKE '%auth_claims_verified()%'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'auth', 'storage', 'extensions')
        AND (has_function_privilege('anon', p.oid, 'EXECUTE') OR has_function_privilege('authenticated', p.oid, 'EXECUTE'))
      ORDER BY 1`);
    expect(unchecked.map((r) => r.fn)).toEqual([...readsWhileVolatile, ...postings, ...locks].sort());
  });

  it('lets an admin\'s or accountant\'s token change no role, organization, period or workspace and post no entry; reads stay open', async () => {
    const boss = await verifyEmailOf(t, await registerUser(t, 'boss'));
    const books = await createOrg(t, boss, 'Books Co');
    await onEnterprisePlan(t, books);
    const acc = await startBooks(t, books, boss);
    await t.db.admin.query(`INSERT INTO core.memberships (org_id, user_id, role) VALUES ($1, $2, 'viewer')`, [books, viewer.id]);
    const token = { sub: boss.id, email: boss.email, aud: 'authenticated', org_id: books };
    const before = async () => (await t.db.admin.query(`
      SELECT (SELECT role FROM core.memberships WHERE org_id = $1 AND user_id = $2) AS role,
             (SELECT name FROM core.organizations WHERE id = $1) AS name,
             (SELECT array_agg(status ORDER BY period_no) FROM finance.fiscal_periods WHERE org_id = $1) AS periods,
             (SELECT count(*)::int FROM core.workspaces WHERE org_id = $1) AS workspaces,
             (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries,
             (SELECT count(*)::int FROM finance.accounts WHERE org_id = $1) AS accounts,
             (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1) AS audits`, [books, viewer.id])).rows[0];
    const state = await before();

    expect(await rest('authenticated', token, `UPDATE core.memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2 RETURNING role`, [books, viewer.id])).toEqual([]);
    expect(await rest('authenticated', token, `UPDATE core.organizations SET name = 'Renamed over REST' WHERE id = $1 RETURNING id`, [books])).toEqual([]);
    expect(await rest('authenticated', token, `UPDATE finance.fiscal_periods SET status = 'closed' WHERE org_id = $1 RETURNING id`, [books])).toEqual([]);
    expect(await rest('authenticated', token, `DELETE FROM core.workspaces WHERE org_id = $1 RETURNING id`, [books])).toEqual([]);
    await expect(rest('authenticated', token, `INSERT INTO core.workspaces (org_id, name) VALUES ($1, 'REST workspace')`, [books]))
      .rejects.toMatchObject({ code: '42501' });
    await expect(rest('authenticated', token, `INSERT INTO finance.accounts (org_id, code, name, type) VALUES ($1, '1999', 'REST account', 'asset')`, [books]))
      .rejects.toMatchObject({ code: '42501' });
    const entry = { date: '2026-01-02', memo: 'over REST', lines: [{ accountId: acc['1100'], debit: '1.00' }, { accountId: acc['3100'], credit: '1.00' }] };
    await expect(rest('authenticated', token, `SELECT entry_id FROM finance.post_journal_entry($1::jsonb)`, [JSON.stringify(entry)]))
      .rejects.toMatchObject({ code: '42501' });
    await expect(rest('authenticated', token, `SELECT finance.post_journal_entries($1::jsonb)`, [JSON.stringify([entry])]))
      .rejects.toMatchObject({ code: '42501' });
    expect(await before()).toEqual(state);

    // reads over REST are what the API's would be; the API itself still writes, audited
    expect(await rest('authenticated', token, `SELECT code FROM finance.accounts WHERE org_id = $1 AND code = '1100'`, [books])).toEqual([{ code: '1100' }]);
    const posted = await t.http.post(ledgerUrl(books, 'journal-entries')).set(boss.auth).send(entry).expect(201);
    await t.http.patch(`/v1/orgs/${books}/members/${viewer.id}`).set(boss.auth).send({ role: 'member' }).expect(200);
    expect(await before()).toEqual({ ...state, role: 'member', entries: 1, audits: state.audits + 2 });
    expect(posted.body.memo).toBe('over REST');
  });
});
