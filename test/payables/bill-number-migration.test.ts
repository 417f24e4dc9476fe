import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { migrate, projectRoot } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const MIGRATION = '20270207700100_payables_review_fixes';
const before = readdirSync(join(projectRoot(), 'prisma', 'migrations')).sort().filter((m) => m < MIGRATION).at(-1)!;

/**
 * Bills entered twice before a vendor's bill number was unique (one a posted bill, which nothing may change) do not
 * stop the migration: all but the first live one of each vendor and number are marked and left out of the index;
 * a voided one, another vendor's, or a bill without number is not a duplicate. From then on a new duplicate is refused.
 */
describe('payables migration: one live bill per vendor and bill number', () => {
  let db: TestDatabase;
  const org = randomUUID();
  const [v1, v2] = [randomUUID(), randomUUID()];
  const ids = { first: randomUUID(), posted: randomUUID(), voided: randomUUID(), submitted: randomUUID(), otherVendor: randomUUID(), noNumber: randomUUID() };

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: before, log: () => undefined });
    // the rows alone (organization, vendors, entries and accounts are not what is tested): foreign keys off for the fixture
    const bill = (id: string, vendor: string, number: string | null, status: string, at: string) => {
      const posting = status === 'posted' ? `'${randomUUID()}', 1, 300, '${randomUUID()}'` : 'NULL, NULL, NULL, NULL';
      return `('${org}', '${id}', 'bill', '${vendor}', ${number === null ? 'NULL' : `'${number}'`}, '2026-02-02', '2026-03-04', 'EUR', 300, 300, '${status}',
        ${posting}, 'u1', '${at}')`;
    };
    await db.admin.query(`SET session_replication_role = replica;
      INSERT INTO finance.bills (org_id, id, kind, vendor_id, bill_number, bill_date, due_date, currency, subtotal, total, status,
        journal_entry_id, rate, base_total, ap_account_id, created_by, created_at) VALUES
      ${bill(ids.first, v1, 'V-777', 'draft', '2026-02-01T10:00:00Z')},
      ${bill(ids.posted, v1, ' v-777', 'posted', '2026-02-01T11:00:00Z')},
      ${bill(ids.voided, v1, 'V-777', 'voided', '2026-02-01T12:00:00Z')},
      ${bill(ids.submitted, v1, 'V-777 ', 'submitted', '2026-02-01T13:00:00Z')},
      ${bill(ids.otherVendor, v2, 'V-777', 'draft', '2026-02-01T14:00:00Z')},
      ${bill(ids.noNumber, v1, null, 'draft', '2026-02-01T15:00:00Z')};
      RESET session_replication_role;`);
  }, 300_000);
  afterAll(() => db.drop());

  it('marks the later live duplicates, builds the index, keeps posted bills guarded; a new duplicate is refused', async () => {
    const applied = await migrate(db.url, { log: () => undefined });
    expect(applied).toContain(MIGRATION);
    const { rows } = await db.admin.query(`SELECT id, legacy_duplicate_number AS marked FROM finance.bills WHERE org_id = $1`, [org]);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.marked]))).toEqual({
      [ids.first]: false, [ids.posted]: true, [ids.voided]: false, [ids.submitted]: true, [ids.otherVendor]: false, [ids.noNumber]: false,
    });
    // the guard is on again: a posted bill does not change
    await expect(db.admin.query(`UPDATE finance.bills SET memo = 'x' WHERE id = $1`, [ids.posted])).rejects.toThrow(/is posted: it cannot be changed/);
    // a new live V-777 of vendor 1 meets the index; another number does not
    const insert = (number: string) => db.admin.query(`SET session_replication_role = replica;
      INSERT INTO finance.bills (org_id, kind, vendor_id, bill_number, bill_date, due_date, currency, status, created_by)
      VALUES ('${org}', 'bill', '${v1}', '${number}', '2026-02-02', '2026-03-04', 'EUR', 'draft', 'u1');
      RESET session_replication_role;`);
    await expect(insert('V-777')).rejects.toThrow(/bills_vendor_number_key/);
    await insert('V-778');
  });
});
