import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { onPlan, orgWithRoles, type RoleUsers } from '../support/factories.js';
import { ledgerUrl, startBooks } from '../ledger/ledger-support.js';
import { agingBucket, agingReport } from '../../src/modules/payables/aging.js';
import { createVendor, payablesUrl } from './payables-support.js';

describe('AP aging properties', () => {
  it('the pure function: every item lands in exactly one bucket and the buckets add up to the total', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 6 }).map((e) => e.sort((a, b) => a - b)),
      fc.array(fc.record({ days: fc.integer({ min: -60, max: 500 }), cents: fc.integer({ min: -100_000, max: 10_000_000 }), party: fc.integer({ min: 0, max: 3 }) }), { maxLength: 30 }),
      (edges, items) => {
        const r = agingReport(items.map((i) => ({ partyType: 'vendor', partyId: `v${i.party}`, partyName: null, bucket: agingBucket(i.days, edges), amount: new Decimal(i.cents).div(100) })), edges, 2);
        const expected = items.reduce((s, i) => s.plus(new Decimal(i.cents).div(100)), new Decimal(0));
        expect(r.total).toBe(expected.toFixed(2));
        expect(Object.values(r.totals).reduce((s, v) => s.plus(v), new Decimal(0)).toFixed(2)).toBe(r.total);
        for (const row of r.rows) expect(Object.values(row.buckets).reduce((s, v) => s.plus(v), new Decimal(0)).toFixed(2)).toBe(row.total);
        for (const i of items) expect(Object.keys(r.totals)).toContain(agingBucket(i.days, edges));
      },
    ), { numRuns: 200 });
  });

  describe('through the API', () => {
    let t: TestApp;
    let orgId: string;
    let users: RoleUsers;
    let acc: Record<string, string>;
    let vendors: string[];
    const url = (p: string) => payablesUrl(orgId, p);

    beforeAll(async () => {
      t = await createTestApp();
      ({ orgId, users } = await orgWithRoles(t, 'Aging Ltd'));
      await onPlan(t, orgId, 'professional');
      acc = await startBooks(t, orgId, users.owner);
      await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(users.owner.auth).send({ rates: [
        { currency: 'USD', date: '2026-01-01', rate: '0.9' }, { currency: 'USD', date: '2026-03-01', rate: '0.9372' }, { currency: 'USD', date: '2026-05-01', rate: '0.8811' }] }).expect(201);
      vendors = [await createVendor(t, orgId, users.accountant, { name: 'V One' }), await createVendor(t, orgId, users.accountant, { name: 'V Two', paymentTermsDays: 10 })];
    });
    afterAll(() => t.close());

    it('the SQL bucket rule (finance.aging_bucket, which the aging groups by) is the TypeScript one, for any edges and days', async () => {
      await fc.assert(fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 10 }).map((e) => e.sort((a, b) => a - b)),
        fc.array(fc.integer({ min: -60, max: 500 }), { minLength: 1, maxLength: 40 }),
        async (edges, days) => {
          const { rows } = await t.db.admin.query('SELECT finance.aging_bucket(d, $2::int[]) AS b FROM unnest($1::int[]) WITH ORDINALITY u(d, n) ORDER BY n', [days, edges]);
          expect(rows.map((r) => r.b)).toEqual(days.map((d) => agingBucket(d, edges)));
        },
      ), { numRuns: 50 });
    });

    it('after random bills (EUR and USD) and partial payments, at any date: sum of buckets = total open = AP control balance', async () => {
      const day = fc.integer({ min: 0, max: 180 }).map((d) => new Date(Date.parse('2026-01-01T00:00:00Z') + d * 86_400_000).toISOString().slice(0, 10));
      await fc.assert(fc.asyncProperty(
        fc.array(fc.record({ vendor: fc.integer({ min: 0, max: 1 }), date: day, usd: fc.boolean(), cents: fc.integer({ min: 1, max: 99_999 }),
          pay: fc.option(fc.record({ share: fc.integer({ min: 1, max: 100 }), after: fc.integer({ min: 0, max: 90 }) })) }), { minLength: 1, maxLength: 4 }),
        fc.array(day, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 2 }),
        async (docs, dates, edgesPick) => {
          for (const d of docs) {
            const currency = d.usd ? 'USD' : 'EUR';
            const amount = new Decimal(d.cents).div(100);
            const b = await t.http.post(url('bills')).set(users.accountant.auth)
              .send({ vendorId: vendors[d.vendor], billDate: d.date, currency, lines: [{ accountId: acc['5200'], unitPrice: amount.toFixed(2) }] }).expect(201);
            await t.http.post(url(`bills/${b.body.id}/submit`)).set(users.accountant.auth).expect(200);
            if (d.pay) {
              const paid = amount.times(d.pay.share).div(100).toDecimalPlaces(2, Decimal.ROUND_DOWN);
              if (paid.gt(0)) {
                const paymentDate = new Date(Date.parse(`${d.date}T00:00:00Z`) + d.pay.after * 86_400_000).toISOString().slice(0, 10);
                // pays a little more than it allocates now and then: the rest stays as a vendor credit
                const extra = d.pay.share % 3 === 0 ? new Decimal('1.00') : new Decimal(0);
                await t.http.post(url('payments')).set(users.accountant.auth).send({
                  vendorId: vendors[d.vendor], paymentDate, currency, amount: paid.plus(extra).toFixed(2), bankAccountId: acc['1100'],
                  allocations: [{ billId: b.body.id, amount: paid.toFixed(2) }],
                }).expect(201);
              }
            }
          }
          const buckets = ['', '&buckets=15,30,60', '&buckets=7'][edgesPick];
          for (const asOf of dates) {
            const r = (await t.http.get(url(`aging?asOf=${asOf}${buckets}`)).set(users.viewer.auth).expect(200)).body;
            const sum = Object.values<string>(r.totals).reduce((s, v) => s.plus(v), new Decimal(0)).toFixed(2);
            expect([sum, r.total]).toEqual([r.controlAccountBalance, r.controlAccountBalance]);
            const tb = (await t.http.get(ledgerUrl(orgId, `reports/trial-balance?asOf=${asOf}`)).set(users.viewer.auth).expect(200)).body;
            const ap = tb.rows.find((x: any) => x.code === '2100');
            expect(ap ? new Decimal(ap.credit).minus(ap.debit).toFixed(2) : '0.00').toBe(r.total);
          }
        },
      ), { numRuns: 12 });
    });
  });
});
