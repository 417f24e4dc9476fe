import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { loadConfig } from '../../src/platform/config/config.js';
import { startApp, type TestApp } from '../support/app.js';
import { createTestDatabase } from '../support/database.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { ledgerUrl, startBooks } from './ledger-support.js';
import { addColumnsReadAhead, dropColumnsReadAhead } from '../support/columns-read-ahead.js';

const MIGRATION = '20270210950100_periods_before_closed_year_closed';
const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;

/**
 * An organization upgraded from a release before 20270210570100 / 20270210580100 can have an open fiscal year before a
 * closed one (FY2026 closed, then FY2025 created): its postings changed FY2026's closed figures. The migration closes
 * the open year's periods (audited once per organization), so every posting path's period check refuses it; a period
 * of it does not reopen while the later year is closed. Once the accountant reopens FY2026, they proceed in order.
 */
describe('migration: an open fiscal year before a closed one takes no postings', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  let otherOrg: string;
  /** FY2026 and FY2027 closed, then FY2025 created: two later closed years */
  let twoOrg: string;
  let two: TestUser;
  const twoYears: Record<string, any> = {};
  let acc: Record<string, string>;
  const years: Record<string, any> = {};
  const url = (path: string) => ledgerUrl(orgId, path);
  const entry = (date: string, amount = '10.00') => ({ date, lines: [{ accountId: acc['1100'], debit: amount }, { accountId: acc['4100'], credit: amount }] });
  const periodsOf = async (org: string, yearStart: string) => (await t.db.admin.query(`SELECT p.id, p.status, p.start_date::text AS start FROM finance.fiscal_periods p
    JOIN finance.fiscal_years y ON y.org_id = p.org_id AND y.id = p.fiscal_year_id WHERE p.org_id = $1 AND y.start_date = $2 ORDER BY p.start_date`, [org, yearStart])).rows;
  /** a statement of the privileged path (service_role: INSERT and UPDATE on fiscal_periods, every row), committed */
  const asServiceRole = async (text: string, params: unknown[]) => {
    const c = await t.db.admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL ROLE service_role');
      const { rows } = await c.query(text, params);
      await c.query('COMMIT');
      return rows;
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    } finally {
      c.release();
    }
  };
  /** what a refused request must leave as it was */
  const snapshot = async () => (await t.db.admin.query(`SELECT
      (SELECT count(*)::int FROM finance.journal_entries WHERE org_id = $1) AS entries,
      (SELECT count(*)::int FROM core.audit_logs WHERE org_id = $1) AS audit,
      (SELECT string_agg(status || updated_at::text, ',' ORDER BY start_date) FROM finance.fiscal_periods WHERE org_id = $1) AS periods,
      (SELECT string_agg(status || updated_at::text, ',' ORDER BY start_date) FROM finance.fiscal_years WHERE org_id = $1) AS years`, [orgId])).rows[0];

  beforeAll(async () => {
    const db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: before, log: () => undefined });
    // this release's API reads columns a later migration adds (test/support/columns-read-ahead.ts)
    await addColumnsReadAhead(db.admin, before);
    const config = loadConfig({
      ...process.env, NODE_ENV: 'test', DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, API_DATABASE_POOL_SIZE: '4', REDIS_PREFIX: `test:${db.name}`,
      JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false', REDIS_COMMAND_TIMEOUT_MS: '10000', DATABASE_LOCK_TIMEOUT_MS: '30000',
      DATABASE_STATEMENT_TIMEOUT_MS: '60000', DATABASE_CONNECT_TIMEOUT_MS: '60000',
    });
    const { app, http, contract } = await startApp(config);
    t = { app, http, config, db, contract, close: async () => { await app.close(); await db.drop(); } };

    owner = await registerUser(t, 'owner');
    orgId = await createOrg(t, owner, 'Upgraded Books GmbH');
    await onEnterprisePlan(t, orgId);
    acc = await startBooks(t, orgId, owner);
    await t.http.post(url('journal-entries')).set(owner.auth).send(entry('2026-03-01', '100.00')).expect(201);
    await t.http.post(url(`fiscal-years/${(await t.http.get(url('fiscal-years')).set(owner.auth).expect(200)).body[0].id}/close`)).set(owner.auth).expect(200);
    two = await registerUser(t, 'two');
    twoOrg = await createOrg(t, two, 'Two Closed Years AG');
    await onEnterprisePlan(t, twoOrg);
    await startBooks(t, twoOrg, two);
    await t.http.post(ledgerUrl(twoOrg, 'fiscal-years')).set(two.auth).send({ startDate: '2027-01-01' }).expect(201);
    for (const y of (await t.http.get(ledgerUrl(twoOrg, 'fiscal-years')).set(two.auth).expect(200)).body) {
      await t.http.post(ledgerUrl(twoOrg, `fiscal-years/${y.id}/close`)).set(two.auth).expect(200);
    }
    // what an earlier release allowed: FY2025 created after FY2026 closed (the rule of 20270210570100 off), and posted into
    await t.db.admin.query('ALTER TABLE finance.fiscal_years DISABLE TRIGGER fiscal_years_no_overlap');
    await t.http.post(url('fiscal-years')).set(owner.auth).send({ startDate: '2025-01-01' }).expect(201);
    await t.http.post(ledgerUrl(twoOrg, 'fiscal-years')).set(two.auth).send({ startDate: '2025-01-01' }).expect(201);
    await t.db.admin.query('ALTER TABLE finance.fiscal_years ENABLE TRIGGER fiscal_years_no_overlap');
    for (const y of (await t.http.get(ledgerUrl(twoOrg, 'fiscal-years')).set(two.auth).expect(200)).body) twoYears[y.startDate.slice(0, 4)] = y;
    expect([twoYears['2025'].status, twoYears['2026'].status, twoYears['2027'].status]).toEqual(['open', 'closed', 'closed']);
    await t.http.post(url('journal-entries')).set(owner.auth).send(entry('2025-06-30')).expect(201);
    for (const y of (await t.http.get(url('fiscal-years')).set(owner.auth).expect(200)).body) years[y.startDate.slice(0, 4)] = y;
    expect([years['2025'].status, years['2026'].status]).toEqual(['open', 'closed']);

    // another organization in order (FY2025 and FY2026 both open): the migration leaves it alone
    const other = await registerUser(t, 'other');
    otherOrg = await createOrg(t, other, 'In Order Ltd');
    await startBooks(t, otherOrg, other);
    await t.http.post(ledgerUrl(otherOrg, 'fiscal-years')).set(other.auth).send({ startDate: '2025-01-01' }).expect(201);
  }, 600_000);
  afterAll(async () => {
    await t.close();
    expect(t.contract.violations).toEqual([]);
  });

  it('closes the open year\'s periods, audited once per organization with the entries posted after the later year closed; the other organization and the closed year unchanged', async () => {
    const otherBefore = [await periodsOf(otherOrg, '2025-01-01'), await periodsOf(otherOrg, '2026-01-01')];
    const log: string[] = [];
    await dropColumnsReadAhead(t.db.admin, before);
    expect(await migrate(t.db.url, { log: (line) => log.push(line) })).toContain(MIGRATION);
    // the operator's log names the organization, the entries that changed the later year's closed figures (the one
    // dated 2025-06-30, posted after FY2026 closed) and what it has to do
    const notice = (org: string, ys: Record<string, any>, late: number) => `${MIGRATION}: NOTICE: organization ${org}: fiscal year ${ys['2025'].name} (2025-01-01 to 2025-12-31) `
      + `is open before the closed fiscal year ${ys['2026'].name} (2026-01-01 to 2026-12-31): its 12 open period(s) were closed (no postings into it); `
      + `${late} entry(ies) were posted into it after that year closed (when any, its closed figures changed: reopen it and close it again); `
      + 'to post into it, reopen the later closed years first, then its periods, and close the years in order';
    expect(log.filter((l) => l.startsWith(MIGRATION)).sort()).toEqual([notice(orgId, years, 1), notice(twoOrg, twoYears, 0)].sort());
    const closed = await periodsOf(orgId, '2025-01-01');
    expect(closed).toHaveLength(12);
    expect(closed.map((p) => p.status)).toEqual(Array(12).fill('closed'));
    expect((await periodsOf(orgId, '2026-01-01')).map((p) => p.status)).toEqual(Array(12).fill('closed'));
    const { rows: yearRows } = await t.db.admin.query(`SELECT start_date::text AS start, status FROM finance.fiscal_years WHERE org_id = $1 ORDER BY start_date`, [orgId]);
    expect(yearRows).toEqual([{ start: '2025-01-01', status: 'open' }, { start: '2026-01-01', status: 'closed' }]);
    expect([await periodsOf(otherOrg, '2025-01-01'), await periodsOf(otherOrg, '2026-01-01')]).toEqual(otherBefore);
    expect(otherBefore.flat().every((p) => p.status === 'open')).toBe(true);

    const { rows: audit } = await t.db.admin.query(`SELECT org_id, actor_id, principal_type, entity_type, entity_id, before, after FROM core.audit_logs
      WHERE action = 'ledger.earlier_year_periods_closed' ORDER BY org_id = $1 DESC`, [orgId]);
    expect(audit).toHaveLength(2);
    expect(audit[1].after.fiscalYears.map((y: any) => [y.id, y.laterClosedYear.id, y.entriesPostedAfterLaterYearClosed]))
      .toEqual([[twoYears['2025'].id, twoYears['2026'].id, 0]]);
    expect(audit.slice(0, 1)).toEqual([{
      org_id: orgId, actor_id: 'migration:20270210950100', principal_type: 'system', entity_type: 'organization', entity_id: orgId, before: null,
      after: { reason: 'later_year_closed', fiscalYears: [{
        id: years['2025'].id, name: years['2025'].name, startDate: '2025-01-01', endDate: '2025-12-31',
        laterClosedYear: { id: years['2026'].id, name: years['2026'].name, startDate: '2026-01-01', endDate: '2026-12-31' },
        periodsClosed: closed.map((p) => p.id), entriesPostedAfterLaterYearClosed: 1,
      }] },
    }]);
  });

  it('a posting into the open year is refused by its period (single, batch, reversal), nothing written', async () => {
    const was = await snapshot();
    const single = await t.http.post(url('journal-entries')).set(owner.auth).send(entry('2025-07-01')).expect(422);
    expect(single.body.error).toEqual({ code: 'ledger.period_closed', message: 'the fiscal period 2025-07-01 to 2025-07-31 is closed' });
    const batch = await t.http.post(url('journal-entries/batch')).set(owner.auth).send({ entries: [entry('2025-12-31')] }).expect(422);
    expect(batch.body.error.code).toBe('ledger.period_closed');
    const posted = (await t.db.admin.query(`SELECT id FROM finance.journal_entries WHERE org_id = $1 AND entry_date = '2025-06-30'`, [orgId])).rows[0].id;
    const reversal = await t.http.post(url(`journal-entries/${posted}/reverse`)).set(owner.auth).send({}).expect(422);
    expect(reversal.body.error.code).toBe('ledger.period_closed');
    expect(await snapshot()).toEqual(was);
  });

  it('its periods do not reopen while the later year is closed (422 ledger.later_year_closed, also for any writer), nor does the year close', async () => {
    const was = await snapshot();
    const [first, ...rest] = await periodsOf(orgId, '2025-01-01');
    const last = rest.at(-1)!;
    const res = await t.http.post(url(`periods/${last.id}/reopen`)).set(owner.auth).expect(422);
    expect(res.body.error).toEqual({ code: 'ledger.later_year_closed', message: 'reopen the later fiscal year 2026-01-01 to 2026-12-31 first' });
    await expect(t.db.admin.query(`UPDATE finance.fiscal_periods SET status = 'open' WHERE org_id = $1 AND id = $2`, [orgId, first.id]))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.later_year_closed' });
    const close = await t.http.post(url(`fiscal-years/${years['2025'].id}/close`)).set(owner.auth).expect(422);
    expect(close.body.error.code).toBe('ledger.period_closed');
    expect(await snapshot()).toEqual(was);
  });

  it('no writer opens a period in a closed year or before a closed one: service_role\'s update or insert is refused (23514), nothing written', async () => {
    const was = await snapshot();
    // a period of the closed year FY2026 (its year's status was the service's check only)
    const ofClosedYear = (await periodsOf(orgId, '2026-01-01'))[5];
    await expect(asServiceRole(`UPDATE finance.fiscal_periods SET status = 'open', closed_at = NULL WHERE org_id = $1 AND id = $2`, [orgId, ofClosedYear.id]))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.period_in_closed_year' });
    // an open period inserted (dates no other period has) into FY2025, before the closed FY2026, or into FY2026 itself
    const insert = (yearId: string, start: string, end: string) => asServiceRole(`INSERT INTO finance.fiscal_periods (org_id, fiscal_year_id, period_no, start_date, end_date)
      VALUES ($1, $2, 13, $3, $4)`, [orgId, yearId, start, end]);
    await expect(insert(years['2025'].id, '2024-12-01', '2024-12-31')).rejects.toMatchObject({ code: '23514', hint: 'ledger.later_year_closed' });
    await expect(insert(years['2026'].id, '2027-01-01', '2027-01-31')).rejects.toMatchObject({ code: '23514', hint: 'ledger.period_in_closed_year' });
    expect(await snapshot()).toEqual(was);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.fiscal_periods WHERE org_id = $1`, [orgId])).rows[0].n).toBe(24);
  });

  it('with two later years closed, the latest is named (the one to reopen first); they reopen newest first through the API, then the period', async () => {
    const twoUrl = (path: string) => ledgerUrl(twoOrg, path);
    const period = (await periodsOf(twoOrg, '2025-01-01')).at(-1)!;
    const refused = { code: 'ledger.later_year_closed', message: 'reopen the later fiscal year 2027-01-01 to 2027-12-31 first' };
    expect((await t.http.post(twoUrl(`periods/${period.id}/reopen`)).set(two.auth).expect(422)).body.error).toEqual(refused);
    await expect(asServiceRole(`UPDATE finance.fiscal_periods SET status = 'open' WHERE org_id = $1 AND id = $2`, [twoOrg, period.id]))
      .rejects.toMatchObject({ code: '23514', hint: 'ledger.later_year_closed',
        message: expect.stringContaining(`while the later fiscal year ${twoYears['2027'].name} (2027-01-01 to 2027-12-31) is closed`) });
    expect((await t.http.post(twoUrl(`fiscal-years/${twoYears['2026'].id}/reopen`)).set(two.auth).expect(422)).body.error).toEqual(refused);

    // FY2027 reopens (the year, then its periods: the trigger refuses a period opening in a closed year); then FY2026 is named
    await t.http.post(twoUrl(`fiscal-years/${twoYears['2027'].id}/reopen`)).set(two.auth).expect(200);
    expect((await t.http.post(twoUrl(`periods/${period.id}/reopen`)).set(two.auth).expect(422)).body.error)
      .toEqual({ code: 'ledger.later_year_closed', message: 'reopen the later fiscal year 2026-01-01 to 2026-12-31 first' });
    await t.http.post(twoUrl(`fiscal-years/${twoYears['2026'].id}/reopen`)).set(two.auth).expect(200);
    const reopened = await t.http.post(twoUrl(`periods/${period.id}/reopen`)).set(two.auth).expect(200);
    expect(reopened.body).toMatchObject({ id: period.id, status: 'open' });

    const { rows } = await t.db.admin.query(`SELECT start_date::text AS start, status, closed_at FROM finance.fiscal_years WHERE org_id = $1 ORDER BY start_date`, [twoOrg]);
    expect(rows).toEqual(['2025-01-01', '2026-01-01', '2027-01-01'].map((start) => ({ start, status: 'open', closed_at: null })));
    expect((await periodsOf(twoOrg, '2026-01-01')).concat(await periodsOf(twoOrg, '2027-01-01')).map((p) => p.status)).toEqual(Array(24).fill('open'));
    expect((await periodsOf(twoOrg, '2025-01-01')).map((p) => p.status)).toEqual([...Array(11).fill('closed'), 'open']);
    const { rows: audit } = await t.db.admin.query(`SELECT action, entity_id FROM core.audit_logs WHERE org_id = $1
      AND action IN ('ledger.fiscal_year_reopened', 'ledger.period_reopened') ORDER BY id`, [twoOrg]);
    expect(audit).toEqual([{ action: 'ledger.fiscal_year_reopened', entity_id: twoYears['2027'].id },
      { action: 'ledger.fiscal_year_reopened', entity_id: twoYears['2026'].id }, { action: 'ledger.period_reopened', entity_id: period.id }]);
  });

  it('once the later year reopens, the accountant reopens the period, posts, and closes the years in order', async () => {
    await t.http.post(url(`fiscal-years/${years['2026'].id}/reopen`)).set(owner.auth).expect(200);
    const last = (await periodsOf(orgId, '2025-01-01')).at(-1)!;
    await t.http.post(url(`periods/${last.id}/reopen`)).set(owner.auth).expect(200);
    await t.http.post(url('journal-entries')).set(owner.auth).send(entry('2025-12-15')).expect(201);
    await t.http.post(url(`fiscal-years/${years['2025'].id}/close`)).set(owner.auth).expect(200);
    await t.http.post(url(`fiscal-years/${years['2026'].id}/close`)).set(owner.auth).expect(200);
    const { rows } = await t.db.admin.query(`SELECT start_date::text AS start, status FROM finance.fiscal_years WHERE org_id = $1 ORDER BY start_date`, [orgId]);
    expect(rows).toEqual([{ start: '2025-01-01', status: 'closed' }, { start: '2026-01-01', status: 'closed' }]);
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM finance.journal_entries WHERE org_id = $1 AND entry_date = '2025-12-15'`, [orgId])).rows[0].n).toBe(1);
  });
});
