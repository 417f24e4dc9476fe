import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type pg from 'pg';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles } from '../support/factories.js';
import { openTenantTransaction } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';
import { rUrl, setupReceivables } from './receivables-support.js';

/**
 * Re-review, receivables: issuing read the customer's archived state without a lock, while an archive (or an update)
 * locks the customer FOR NO KEY UPDATE: a draft issued while its customer's archive was in flight read it not yet
 * archived and was issued. The issue now reads the customer FOR SHARE: it waits for the archive and reads it committed.
 */
describe('receivables: an issue waits for its customer\'s archive in flight', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('answers 422 receivables.customer_archived once the archive commits; nothing issued or posted', async () => {
    const { orgId, users } = await orgWithRoles(t, 'Archive Race Ltd');
    await onPlan(t, orgId, 'professional');
    const { acc, customer } = await setupReceivables(t, orgId, users.owner);
    const draft = await t.http.post(rUrl(orgId, 'invoices')).set(users.owner.auth).send({ customerId: customer, invoiceDate: '2026-03-01',
      lines: [{ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }] }).expect(201);
    const clients: pg.Client[] = [];
    try {
      // the archive's update in flight (it holds the customer's row until it commits), as CustomersService.archive's
      const archive = await openTenantTransaction(t.db.apiUrl, { sub: users.owner.id, org_id: orgId }, clients);
      await archive.c.query('UPDATE finance.customers SET archived_at = now(), updated_at = now() WHERE org_id = $1 AND id = $2', [orgId, customer]);
      const issuing = t.http.post(rUrl(orgId, `invoices/${draft.body.id}/issue`)).set(users.owner.auth).send({}).then((r) => r);
      await until('the issue waits for the customer\'s row', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1 AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')`,
        [archive.pid])).rows[0].n > 0);
      await archive.c.query('COMMIT');
      const res = await issuing;
      expect(res.status).toBe(422);
      expect(res.body.error).toMatchObject({ code: 'receivables.customer_archived', message: expect.stringContaining('Alpha Ltd is archived') });
    } finally {
      for (const c of clients) await c.end();
    }
    const { rows } = await t.db.admin.query(`SELECT status, number, (SELECT count(*)::int FROM finance.journal_entries e WHERE e.org_id = i.org_id) AS entries
      FROM finance.invoices i WHERE org_id = $1 AND id = $2`, [orgId, draft.body.id]);
    expect(rows).toEqual([{ status: 'draft', number: null, entries: 0 }]);
  });
});
