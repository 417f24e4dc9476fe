import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser, onPlan } from '../support/factories.js';
import { balanceDrift, ledgerUrl, startBooks } from './ledger-support.js';

/**
 * Random batches of entries (two organizations, EUR and USD, some retried with the same
 * idempotency key, some deliberately unbalanced) are posted concurrently through the API while a
 * reader polls; afterwards every invariant of the books must hold.
 */
const cents = (n: number) => `${Math.floor(n / 100)}.${String(n % 100).padStart(2, '0')}`;
const CODES = ['1100', '1200', '1400', '2100', '3100', '4100', '5100', '5200'];

interface PlannedEntry {
  org: 0 | 1;
  pairs: { dr: number; cr: number; amount: number; usd: boolean }[];
  retries: number;
  broken: boolean;
}

const entryArb: fc.Arbitrary<PlannedEntry> = fc.record({
  org: fc.constantFrom(0 as const, 1 as const),
  pairs: fc.array(fc.record({
    dr: fc.integer({ min: 0, max: CODES.length - 1 }), cr: fc.integer({ min: 0, max: CODES.length - 1 }),
    amount: fc.integer({ min: 1, max: 5_000_000 }), usd: fc.boolean(),
  }), { minLength: 1, maxLength: 3 }),
  retries: fc.integer({ min: 0, max: 2 }),
  broken: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
});

describe('ledger: invariants under concurrent posting (property-based)', () => {
  let t: TestApp;
  const orgs: { id: string; owner: TestUser; acc: Record<string, string> }[] = [];
  let keySeq = 0;

  beforeAll(async () => {
    t = await createTestApp();
    for (const name of ['Prop A', 'Prop B']) {
      const owner = await registerUser(t, 'prop');
      const id = await createOrg(t, owner, name);
      await onPlan(t, id, 'professional'); // multi-currency entries are full accounting
      const acc = await startBooks(t, id, owner);
      await t.http.post(ledgerUrl(id, 'fx-rates')).set(owner.auth).send({ currency: 'USD', date: '2026-01-01', rate: '0.9137' }).expect(201);
      orgs.push({ id, owner, acc });
    }
  });
  afterAll(() => t.close());

  it('keeps debits = credits, balances = sum of lines, whole entries only, one entry per idempotency key', async () => {
    await fc.assert(fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 8 }), async (batch) => {
      const requests = batch.flatMap((e) => {
        const o = orgs[e.org];
        const key = `prop-${++keySeq}`;
        const lines: { accountId: string; debit?: string; credit?: string; currency?: string }[] = e.pairs.flatMap((p) => [
          { accountId: o.acc[CODES[p.dr]], debit: cents(p.amount), ...(p.usd ? { currency: 'USD' } : {}) },
          { accountId: o.acc[CODES[p.cr]], credit: cents(p.amount), ...(p.usd ? { currency: 'USD' } : {}) },
        ]);
        // an unbalanced entry: 10.00 more on the last credit (beyond any rounding tolerance)
        if (e.broken) lines[lines.length - 1].credit = cents(e.pairs[e.pairs.length - 1].amount + 1000);
        const body = { date: '2026-01-15', memo: key, idempotencyKey: key, lines };
        return Array.from({ length: e.retries + 1 }, () => ({ org: o, key, body, broken: e.broken, lines: lines.length }));
      });
      let posting = true;
      const expectedLines = new Map(requests.map((r) => [r.key, r.lines]));
      const reader = (async () => {
        let polls = 0;
        while (posting || polls === 0) {
          polls++;
          for (const o of orgs) {
            // one snapshot: every visible entry is complete and balanced
            const rows = await t.db.as({ sub: undefined, role: 'service_role', service: 'reader', org_id: o.id }, 'authenticated', `
              SELECT e.idempotency_key AS key, count(l.line_no)::int AS n, coalesce(sum(l.base_debit) - sum(l.base_credit), 0)::text AS diff
              FROM finance.journal_entries e LEFT JOIN finance.journal_lines l ON l.org_id = e.org_id AND l.entry_id = e.id
              WHERE e.org_id = $1 GROUP BY e.id, e.idempotency_key`, [o.id]);
            for (const r of rows) {
              if (expectedLines.has(r.key)) expect(r.n).toBeGreaterThanOrEqual(expectedLines.get(r.key)!);
              expect(r.n).toBeGreaterThanOrEqual(2);
              expect(Number(r.diff)).toBe(0);
            }
          }
        }
      })();
      const responses = await Promise.all(requests.map((r) => t.http.post(ledgerUrl(r.org.id, 'journal-entries')).set(r.org.owner.auth).send(r.body)));
      posting = false;
      await reader;

      const byKey = new Map<string, { statuses: number[]; ids: Set<string> }>();
      responses.forEach((res, i) => {
        const k = requests[i].key;
        const v = byKey.get(k) ?? { statuses: [], ids: new Set<string>() };
        v.statuses.push(res.status);
        if (res.body.id) v.ids.add(res.body.id);
        byKey.set(k, v);
      });
      for (const [key, v] of byKey) {
        const req = requests.find((r) => r.key === key)!;
        if (req.broken) {
          expect(v.statuses.every((s) => s === 422)).toBe(true);
        } else {
          // posted once: one 201, the retries 200 with the same entry
          expect(v.statuses.sort()).toEqual([...Array(v.statuses.length - 1).fill(200), 201]);
          expect(v.ids.size).toBe(1);
        }
      }
      const keys = [...byKey.keys()];
      const { rows: counts } = await t.db.admin.query(`SELECT idempotency_key AS key, count(*)::int AS n FROM finance.journal_entries WHERE idempotency_key = ANY($1) GROUP BY 1`, [keys]);
      const posted = new Map(counts.map((r) => [r.key, r.n]));
      for (const key of keys) expect(posted.get(key) ?? 0).toBe(requests.find((r) => r.key === key)!.broken ? 0 : 1);

      const { rows: sums } = await t.db.admin.query(`SELECT org_id, sum(base_debit) = sum(base_credit) AS ok FROM finance.journal_lines GROUP BY org_id`);
      expect(sums.every((r) => r.ok)).toBe(true);
      const { rows: perEntry } = await t.db.admin.query(`SELECT entry_id FROM finance.journal_lines GROUP BY org_id, entry_id
        HAVING sum(base_debit) <> sum(base_credit) OR count(*) < 2 OR (count(DISTINCT currency) = 1 AND sum(debit) <> sum(credit))`);
      expect(perEntry).toEqual([]);
      // running and per-period balances equal the lines (every amount and the line counts)
      expect(await balanceDrift(t)).toEqual([]);
      for (const o of orgs) {
        const tb = await t.http.get(ledgerUrl(o.id, 'reports/trial-balance')).set(o.owner.auth).expect(200);
        expect(tb.body.balanced).toBe(true);
      }
    }), { numRuns: 20 });
  });
});
