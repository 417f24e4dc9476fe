import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, type RoleUsers, onPlan } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';
import { openTenantTransaction } from '../support/database.js';

describe('ledger: the posting function answers with the entry and writes its audit row', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const auditRows = (entryId: string) => t.db.admin.query(
    `SELECT action, actor_id, principal_type, entity_type, before, after, request_id, ip FROM core.audit_logs
     WHERE org_id = $1 AND entity_id = $2 ORDER BY id`, [orgId, entryId]).then((r) => r.rows);

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Posting Audit Ltd'));
    await onPlan(t, orgId, 'professional'); // the foreign-currency case is full accounting
    acc = await startBooks(t, orgId, users.owner);
  });
  afterAll(() => t.close());

  it('answers with the entry exactly as reading it back returns it (foreign currency, rounding line, references)', async () => {
    const posted = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).send({
      date: '2026-03-02', memo: 'USD sale', sourceRef: 'INV-7', idempotencyKey: 'usd-sale-7', lines: [
        { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333', counterpartyType: 'customer', counterpartyId: 'C-1' },
        { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333', description: 'second half' },
        { accountId: acc['4100'], credit: '1.00', currency: 'USD', rate: '0.333' },
      ],
    }).expect(201);
    const read = await t.http.get(ledgerUrl(orgId, `journal-entries/${posted.body.id}`)).set(users.viewer.auth).expect(200);
    expect(posted.body).toEqual(read.body);
    expect(posted.body.lines).toHaveLength(4);
    expect(posted.body.lines[3]).toMatchObject({ accountCode: '5600', isRounding: true, rate: '1.0000000000', baseCredit: '0.01' });
    expect(posted.body.lines[0]).toMatchObject({ rate: '0.3330000000', debit: '0.50', baseDebit: '0.17', counterpartyId: 'C-1' });
  });

  it('writes one audit row per posting through the API, with the request id, the caller and the entry totals', async () => {
    const body = { date: '2026-03-03', memo: 'rent', idempotencyKey: 'rent-mar', lines: [{ accountId: acc['5200'], debit: '700' }, { accountId: acc['1100'], credit: '700' }] };
    const res = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).set('x-request-id', 'req-posting-1').send(body).expect(201);
    await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).send(body).expect(200); // a replay is not a new posting
    const rows = await auditRows(res.body.id);
    expect(rows).toEqual([{
      action: 'ledger.entry_posted', actor_id: users.accountant.id, principal_type: 'user', entity_type: 'journal_entry', before: null,
      after: {
        id: res.body.id, date: '2026-03-03', memo: 'rent', source: 'manual', sourceRef: null, reversesEntryId: null,
        idempotencyKey: 'rent-mar', baseCurrency: 'EUR', totalBase: '700.00', lineCount: 2,
      },
      request_id: 'req-posting-1', ip: expect.stringMatching(/127\.0\.0\.1/),
    }]);
    const reversal = await t.http.post(ledgerUrl(orgId, `journal-entries/${res.body.id}/reverse`)).set(users.accountant.auth).send({}).expect(201);
    expect((await auditRows(reversal.body.id)).map((r) => [r.action, r.after.reversesEntryId])).toEqual([['ledger.entry_reversed', res.body.id]]);
  });

  it('writes through a batch exactly what single postings write: the entry, its lines, the audit row and the answer', async () => {
    // finance.write_entries writes one entry with a statement of its own and batches with another (migration
    // 20270120000100); the same entries posted both ways must leave the same rows but for ids and keys
    const vat = (await t.http.post(ledgerUrl(orgId, 'tax-codes')).set(users.owner.auth)
      .send({ code: 'TW20', name: 'Twin VAT 20 %', rate: '20', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }).expect(201)).body.id;
    const entries = [
      { date: '2026-03-20', memo: 'twin capital', sourceRef: 'TW-1', lines: [{ accountId: acc['1100'], debit: '1000.00' }, { accountId: acc['3100'], credit: '1000.00' }] },
      { date: '2026-03-21', memo: 'twin taxed sale', lines: [
        { accountId: acc['1200'], debit: '120.00', counterpartyType: 'customer', counterpartyId: 'C-9' },
        { accountId: acc['4100'], credit: '100.00', taxCodeId: vat, description: 'goods' },
      ] },
      { date: '2026-03-22', memo: 'twin USD', source: 'invoice', lines: [ // a rounding line is added
        { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333' },
        { accountId: acc['1200'], debit: '0.50', currency: 'USD', rate: '0.333' },
        { accountId: acc['4100'], credit: '1.00', currency: 'USD', rate: '0.333' },
      ] },
    ];
    const single: any[] = [];
    for (const [i, e] of entries.entries()) {
      single.push((await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).send({ ...e, idempotencyKey: `twin-single-${i}` }).expect(201)).body);
    }
    const batch = await t.http.post(ledgerUrl(orgId, 'journal-entries/batch')).set(users.accountant.auth)
      .send({ entries: entries.map((e, i) => ({ ...e, idempotencyKey: `twin-batch-${i}` })) }).expect(201);
    const batchIds: string[] = batch.body.results.map((r: any) => r.id);
    expect(batch.body).toMatchObject({ posted: 3, rejected: 0 });

    // the answer of a single posting is what reading the batch's entry back gives, but for its id, key and time
    const strip = ({ id: _id, idempotencyKey: _key, createdAt: _at, ...rest }: any) => rest;
    for (const [i, id] of batchIds.entries()) {
      const read = await t.http.get(ledgerUrl(orgId, `journal-entries/${id}`)).set(users.viewer.auth).expect(200);
      expect(strip(read.body)).toEqual(strip(single[i]));
    }
    const rows = async (ids: string[]) => (await t.db.admin.query(`
      SELECT e.entry_date::text AS date, e.period_id, e.memo, e.source, e.source_ref, e.reverses_entry_id, e.request_hash, e.base_currency,
             e.total_base::text AS total_base, e.created_by,
             (SELECT jsonb_agg(to_jsonb(l) - 'entry_id' - 'seq' - 'entry_seq' ORDER BY l.line_no) FROM finance.journal_lines l
               WHERE l.org_id = e.org_id AND l.entry_id = e.id) AS lines,
             -- each line carries its own entry's seq (20270211000100), whichever statement wrote it
             (SELECT bool_and(l.entry_seq = e.seq) FROM finance.journal_lines l WHERE l.org_id = e.org_id AND l.entry_id = e.id) AS lines_carry_seq,
             (SELECT jsonb_agg(jsonb_build_object('action', a.action, 'actor', a.actor_id, 'principal', a.principal_type, 'entity', a.entity_type,
                'before', a.before, 'after', a.after - 'id' - 'idempotencyKey', 'ip', a.ip)) FROM core.audit_logs a
               WHERE a.org_id = e.org_id AND a.entity_id = e.id::text) AS audit
      FROM finance.journal_entries e JOIN unnest($2::uuid[]) WITH ORDINALITY AS x(id, n) ON x.id = e.id
      WHERE e.org_id = $1 ORDER BY x.n`, [orgId, ids])).rows;
    const written = await rows(single.map((s) => s.id));
    expect(written.map((r) => [r.lines.length, r.audit.length, r.lines_carry_seq])).toEqual([[2, 1, true], [3, 1, true], [4, 1, true]]); // tax line, rounding line
    expect(await rows(batchIds)).toEqual(written);

    // both statements' balance upserts: the running and the per-period balances equal the sums of the lines
    expect(await balanceDrift(t, orgId)).toEqual([]);
  });

  it('sends the posting\'s event and analytics row with COMMIT: when one of them fails, nothing of the posting is kept', async () => {
    const body = { date: '2026-03-11', memo: 'event refused', idempotencyKey: 'event-refused', lines: [{ accountId: acc['5200'], debit: '9' }, { accountId: acc['1100'], credit: '9' }] };
    const kept = async () => (await t.db.admin.query(`
      SELECT (SELECT count(*) FROM finance.journal_entries WHERE org_id = $1 AND idempotency_key = 'event-refused')::int AS entries,
             (SELECT count(*) FROM core.audit_logs a JOIN finance.journal_entries e ON e.id::text = a.entity_id
               WHERE a.org_id = $1 AND e.idempotency_key = 'event-refused')::int AS audit,
             (SELECT count(*) FROM core.outbox WHERE org_id = $1 AND payload -> 'payload' ->> 'memo' = 'event refused')::int AS events,
             (SELECT count(*) FROM core.analytics_events WHERE org_id = $1 AND name = 'ledger.entry_posted')::int AS analytics`, [orgId])).rows[0];
    const initial = await kept();
    // the outbox refuses the event as a statement timeout would (57014: 503, retryable)
    await t.db.admin.query(`
      CREATE FUNCTION public.refuse_posted_event() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payload ->> 'type' = 'journal_entry.posted' THEN
          RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_posted_event BEFORE INSERT ON core.outbox FOR EACH ROW EXECUTE FUNCTION public.refuse_posted_event();`);
    try {
      const res = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).send(body).expect(503);
      expect(res.body.error.code).toBe('database_timeout');
    } finally {
      await t.db.admin.query('DROP TRIGGER refuse_posted_event ON core.outbox; DROP FUNCTION public.refuse_posted_event()');
    }
    const before = await kept();
    // nothing of the refused posting: no entry, audit row or event, and no analytics row either
    expect(before).toMatchObject({ entries: 0, audit: 0, events: 0 });
    expect(before).toEqual(initial);
    // the same request posts once the outbox takes it: entry, audit row, event and analytics row together
    const posted = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.accountant.auth).send(body).expect(201);
    expect(await kept()).toEqual({ entries: 1, audit: 1, events: 1, analytics: before.analytics + 1 });
    expect(posted.body.memo).toBe('event refused');
  });

  it('audits a posting a service makes by calling the function in its own transaction (no HTTP request)', async () => {
    const service = { role: 'service_role', service: 'receivables', org_id: orgId };
    const [row] = await t.db.asApi(service, 'authenticated', `SELECT entry_id, entry FROM finance.post_journal_entry($1::jsonb)`,
      [JSON.stringify({ date: '2026-03-04', source: 'invoice', sourceRef: 'INV-9', lines: [{ accountId: acc['1200'], debit: '5' }, { accountId: acc['4100'], credit: '5' }] })]);
    expect(row.entry).toMatchObject({ id: row.entry_id, createdBy: 'service:receivables', source: 'invoice' });
    const rows = await auditRows(row.entry_id);
    expect(rows).toEqual([expect.objectContaining({ action: 'ledger.entry_posted', actor_id: 'service:receivables', principal_type: 'service', request_id: null })]);
  });

  it('takes only posting actions as the audit action, and the posting role can write no other audit row', async () => {
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const entry = JSON.stringify({ date: '2026-03-05', lines: [{ accountId: acc['5200'], debit: '1' }, { accountId: acc['1100'], credit: '1' }] });
    await expect(t.db.asApi(claims, 'authenticated', `SELECT * FROM finance.post_journal_entry($1::jsonb, $2::jsonb)`, [entry, JSON.stringify({ action: 'organization.deleted' })]))
      .rejects.toThrow(/audit action organization.deleted is not a posting action/);
    // as the function's owner role itself (only a superuser can become it): other actions, or another actor, are refused
    const asPostingRole = async (sql: string, params: unknown[], postingOrg?: string) => {
      const c = await t.db.admin.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify(claims)]);
        // what the posting functions record once they have verified the organization and the role
        if (postingOrg) await c.query(`SELECT set_config('finance.posting_org', $1, true)`, [postingOrg]);
        await c.query('SET LOCAL ROLE finance_posting');
        return await c.query(sql, params);
      } finally {
        await c.query('ROLLBACK');
        c.release();
      }
    };
    const insert = `INSERT INTO core.audit_logs (org_id, actor_id, principal_type, action, entity_type) VALUES ($1, $2, 'user', $3, $4)`;
    await expect(asPostingRole(insert, [orgId, users.accountant.id, 'organization.deleted', 'organization'], orgId)).rejects.toThrow(/row-level security/);
    await expect(asPostingRole(insert, [orgId, users.owner.id, 'ledger.entry_posted', 'journal_entry'], orgId)).rejects.toThrow(/row-level security/);
    // outside a posting function nothing has recorded the organization: refused
    await expect(asPostingRole(insert, [orgId, users.accountant.id, 'ledger.entry_posted', 'journal_entry'])).rejects.toThrow(/row-level security/);
    await expect(asPostingRole(insert, [orgId, users.accountant.id, 'ledger.entry_posted', 'journal_entry'], orgId)).resolves.toMatchObject({ rowCount: 1 });
    const { rows } = await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND entry_date = '2026-03-05'`, [orgId]);
    expect(rows[0].n).toBe(0);
  });

  it('records the organization it verified itself: one the caller sets beforehand is overwritten', async () => {
    const other = '00000000-0000-4000-8000-0000000000aa';
    const claims = { sub: users.accountant.id, role: 'authenticated', org_id: orgId };
    const entry = JSON.stringify({ date: '2026-03-06', memo: 'set org first', lines: [{ accountId: acc['5200'], debit: '1' }, { accountId: acc['1100'], credit: '1' }] });
    const clients: pg.Client[] = [];
    const { c } = await openTenantTransaction(t.db.apiUrl, claims, clients);
    try {
      await c.query(`SELECT set_config('finance.posting_org', $1, true)`, [other]);
      const { rows: [posted] } = await c.query(`SELECT entry_id FROM finance.post_journal_entry($1::jsonb)`, [entry]);
      const { rows: [batch] } = await c.query(`SELECT finance.post_journal_entries($1::jsonb) AS r`, [JSON.stringify([JSON.parse(entry)])]);
      await c.query('COMMIT');
      const { rows } = await t.db.admin.query(`SELECT org_id FROM finance.journal_entries WHERE id = ANY($1::uuid[])`, [[posted.entry_id, batch.r[0].id]]);
      expect(rows).toEqual([{ org_id: orgId }, { org_id: orgId }]);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end();
    }
    // and an API role cannot read through the posting role's record: its own policies are unchanged
    await expect(t.db.asApi(claims, 'authenticated', `SELECT finance.posting_org()`)).rejects.toThrow(/permission denied/);
  });
});
