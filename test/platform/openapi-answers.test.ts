import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { createTestApp, type TestApp } from '../support/app.js';
import { orgWithRoles, registerUser } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { STANDARD_CHART } from '../../src/modules/ledger/standard-chart.js';

/**
 * Answers the document did not describe (the harness's contract check turns an undocumented status into a 500):
 * a concurrent start of the books answered the generic 409 conflict.unique instead of ledger.books_started, a
 * concurrent identical reversal replayed with an undocumented 200, and the session list carried a revokedAt the
 * schema does not have.
 */
describe('answers as the OpenAPI document describes them', () => {
  let t: TestApp;
  let doc: OpenAPIObject;
  beforeAll(async () => {
    t = await createTestApp();
    doc = (await t.http.get('/docs-json').expect(200)).body;
  });
  afterAll(() => t.close());

  /** Runs `requests` while the test holds `lock`, until `waits` of them wait for a lock (or are answered); then lets them go. */
  async function whileLocked(lock: string, waits: number, requests: () => Promise<{ status: number; body: any }>[]) {
    const holder = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(lock);
      const pending = requests();
      let settled = 0;
      for (const p of pending) void p.then(() => settled++, () => settled++);
      const waiting = async () => (await t.db.admin.query(`SELECT wait_event FROM pg_stat_activity
        WHERE datname = current_database() AND usename = 'omnizen_api' AND wait_event_type = 'Lock' ORDER BY wait_event`)).rows.map((r) => r.wait_event as string);
      await until(`${waits} requests wait (or are answered)`, async () => settled === pending.length || (await waiting()).length === waits);
      const waited = await waiting();
      await holder.query('COMMIT');
      return { answers: await Promise.all(pending), waited };
    } finally {
      holder.release();
    }
  }

  // the test holds the chart (inserts wait): the first start stops at its first account, after its settings row; the
  // five others passed the "already started?" check before that row committed and wait on its key
  it('six simultaneous starts of the books: one 201 and five 409 ledger.books_started; one settings row, one chart, one year', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Books Race Ltd');
    const start = () => t.http.post(ledgerUrl(orgId, 'books')).set(users.owner.auth).send({ baseCurrency: 'EUR', fiscalYearStart: '2026-01-01' }).then((r) => r);
    const { answers, waited } = await whileLocked('LOCK TABLE finance.accounts IN SHARE MODE', 6, () => [0, 1, 2, 3, 4, 5].map(start));
    expect(waited).toEqual(['relation', 'transactionid', 'transactionid', 'transactionid', 'transactionid', 'transactionid']);
    expect(answers.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    for (const r of answers.filter((a) => a.status === 409)) {
      expect(r.body.error).toEqual({ code: 'ledger.books_started', message: 'the books of this organization are already started' });
    }
    expect(answers.find((r) => r.status === 201)!.body).toMatchObject({ baseCurrency: 'EUR' });
    const { rows: [db] } = await t.db.admin.query(`SELECT
        (SELECT count(*)::int FROM finance.settings WHERE org_id = $1) AS settings,
        (SELECT count(*)::int FROM finance.accounts WHERE org_id = $1) AS accounts,
        (SELECT count(*)::int FROM finance.fiscal_years WHERE org_id = $1) AS years,
        (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.books_started') AS audit`, [orgId]);
    expect(db).toEqual({ settings: 1, accounts: STANDARD_CHART.length, years: 1, audit: 1 });
  });

  // the test holds the journal lines (inserts wait): the three reversals, past the "already reversed?" check, wait inside
  // the posting with the same idempotency key (reversal:<id>) and payload; once let go, one posts it and the others
  // replay it (200, undocumented before: the harness answered 500) or, reaching the posting's own check after it
  // committed, are refused. Either way one reversal is in the books.
  it('identical reversals at once: one 201, the others 200 with that reversal (documented) or 409 ledger.already_reversed', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Reversal Race Ltd');
    const acc = await startBooks(t, orgId, users.owner);
    const entry = (await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-01-02', lines: [{ accountId: acc['1100'], debit: '10.00' }, { accountId: acc['3100'], credit: '10.00' }] }).expect(201)).body;
    const reverse = () => t.http.post(ledgerUrl(orgId, `journal-entries/${entry.id}/reverse`)).set(users.owner.auth).send({}).then((r) => r);
    const { answers, waited } = await whileLocked('LOCK TABLE finance.journal_lines IN SHARE MODE', 3, () => [0, 1, 2].map(reverse));
    expect(waited).toEqual(['relation', 'relation', 'relation']);
    const created = answers.find((r) => r.status === 201)!.body;
    expect(created).toMatchObject({ reversesEntryId: entry.id });
    const outcome = (r: { status: number; body: any }) => (r.status === 409 ? `409 ${r.body.error.code}` : `${r.status} ${r.body.id === created.id ? 'the reversal' : r.body.id}`);
    const outcomes = answers.map(outcome).sort();
    for (const o of outcomes) expect(['200 the reversal', '201 the reversal', '409 ledger.already_reversed']).toContain(o);
    expect(outcomes.filter((o) => o.startsWith('201'))).toHaveLength(1);
    expect(outcomes).toContain('200 the reversal');
    const { rows } = await t.db.admin.query(`SELECT id, reverses_entry_id FROM finance.journal_entries WHERE org_id = $1 ORDER BY reverses_entry_id NULLS FIRST`, [orgId]);
    expect(rows).toEqual([{ id: entry.id, reverses_entry_id: null }, { id: created.id, reverses_entry_id: entry.id }]);
    const { rows: audit } = await t.db.admin.query(`SELECT entity_id FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_reversed'`, [orgId]);
    expect(audit).toEqual([{ entity_id: created.id }]);
  });

  // a reversal inserted by another transaction (another key) after this one's reads: the request then waits on the index
  // of one reversal an entry, not on its key's, and loses there once the other commits
  it('a reversal that loses on the index of one reversal an entry answers 409 ledger.already_reversed, not conflict.unique', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Reversal Index Ltd');
    const acc = await startBooks(t, orgId, users.owner);
    const entry = (await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(users.owner.auth)
      .send({ date: '2026-01-02', lines: [{ accountId: acc['1100'], debit: '10.00' }, { accountId: acc['3100'], credit: '10.00' }] }).expect(201)).body;
    const other = await t.db.admin.connect();
    try {
      await other.query('BEGIN');
      const { rows: [inserted] } = await other.query(`INSERT INTO finance.journal_entries (org_id, entry_date, period_id, source, reverses_entry_id, request_hash, base_currency, total_base)
        SELECT org_id, entry_date, period_id, source, id, 'other', base_currency, total_base FROM finance.journal_entries WHERE id = $1 RETURNING id`, [entry.id]);
      const reversal = t.http.post(ledgerUrl(orgId, `journal-entries/${entry.id}/reverse`)).set(users.owner.auth).send({}).then((r) => r);
      await until('the reversal waits on the other transaction', async () => (await t.db.admin.query(`SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND usename = 'omnizen_api' AND wait_event = 'transactionid'`)).rowCount === 1);
      await other.query('COMMIT');
      const answer = await reversal;
      expect({ status: answer.status, error: answer.body.error }).toEqual({
        status: 409, error: { code: 'ledger.already_reversed', message: `journal entry ${entry.id} is already reversed` },
      });
      const { rows } = await t.db.admin.query(`SELECT id FROM finance.journal_entries WHERE org_id = $1 AND reverses_entry_id = $2`, [orgId, entry.id]);
      expect(rows).toEqual([{ id: inserted.id }]);
      const { rows: audit } = await t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1 AND action = 'ledger.entry_reversed'`, [orgId]);
      expect(audit).toEqual([{ n: 0 }]);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      other.release();
    }
  });

  it('lists sessions with exactly the properties of SessionDto (no revokedAt)', async () => {
    const u = await registerUser(t, 'sessions-shape');
    const res = await t.http.get('/v1/auth/sessions').set(u.auth).expect(200);
    const documented = Object.keys((doc.components!.schemas!.SessionDto as { properties: object }).properties).sort();
    expect(res.body).toHaveLength(1);
    expect(Object.keys(res.body[0]).sort()).toEqual(documented);
    const { rows } = await t.db.admin.query('SELECT id, revoked_at FROM core.sessions WHERE user_id = $1', [u.id]);
    expect(rows).toEqual([{ id: res.body[0].id, revoked_at: null }]);
  });
});
