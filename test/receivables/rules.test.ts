import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import pg from 'pg';
import { PDFParse } from 'pdf-parse';
import { createTestApp, startApp, type TestApp } from '../support/app.js';
import { addMember, createOrg, registerUser, type TestUser, onPlan } from '../support/factories.js';
import { ledgerUrl } from '../ledger/ledger-support.js';
import { openTenantTransaction } from '../support/database.js';
import { until } from '../support/throwaway-servers.js';
import { pauseNext, releaseAll } from '../auth/lock-order.js';
import { ledgerRepository } from '../../src/modules/ledger/ledger.repository.js';
import { receivablesRepository } from '../../src/modules/receivables/receivables.repository.js';
import { expectOpenAmountsKept, issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

describe('receivables: concurrency, immutability, bad input, aging property, PDF, plans', () => {
  let t: TestApp;
  let owner: TestUser;
  let accountant: TestUser;
  let viewer: TestUser;
  let orgId: string;
  let acc: Record<string, string>;
  let vat: string;
  let customer: string;
  const line = (extra: object = {}) => ({ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'], ...extra });

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    accountant = await registerUser(t, 'accountant');
    viewer = await registerUser(t, 'viewer');
    orgId = await createOrg(t, owner, 'Rules Ltd');
    await addMember(t, orgId, accountant, 'accountant');
    await addMember(t, orgId, viewer, 'viewer');
    await onPlan(t, orgId, 'professional');
    ({ acc, vat, customer } = await setupReceivables(t, orgId, owner));
  });
  afterAll(() => t.close());

  const count = async (table: string) => Number((await t.db.admin.query(`SELECT count(*) AS n FROM finance.${table} WHERE org_id = $1`, [orgId])).rows[0].n);

  it('20 parallel issues get 20 consecutive numbers', async () => {
    const drafts = await Promise.all(Array.from({ length: 20 }, () =>
      t.http.post(rUrl(orgId, 'invoices')).set(accountant.auth).send({ customerId: customer, invoiceDate: '2026-03-01', series: 'PAR', lines: [line()] }).expect(201)));
    const issued = await Promise.all(drafts.map((d) => t.http.post(rUrl(orgId, `invoices/${d.body.id}/issue`)).set(accountant.auth).send({})));
    expect(issued.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(issued.map((r) => r.body.number).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `PAR-2026-${String(i + 1).padStart(6, '0')}`));
    // the number is taken by the statement that also writes the event and the audit row (sent with COMMIT): each carries it
    const ids = drafts.map((d) => d.body.id as string);
    const numberOf = Object.fromEntries(issued.map((r) => [r.body.id, r.body.number]));
    const { rows: stored } = await t.db.admin.query(`SELECT id, number, status FROM finance.invoices WHERE org_id = $1 AND id = ANY($2::uuid[])`, [orgId, ids]);
    expect(Object.fromEntries(stored.map((r) => [r.id, [r.number, r.status]]))).toEqual(Object.fromEntries(ids.map((id) => [id, [numberOf[id], 'issued']])));
    const { rows: events } = await t.db.admin.query(`SELECT payload FROM core.outbox WHERE org_id = $1 AND topic = 'domain_event' AND payload->>'type' = 'invoice.issued'
      AND payload->'payload'->>'invoiceId' = ANY($2::text[])`, [orgId, ids]);
    expect(events.map((e) => [e.payload.payload.invoiceId, e.payload.payload.number]).sort()).toEqual(ids.map((id) => [id, numberOf[id]]).sort());
    expect(events[0].payload).toMatchObject({ version: 1, payload: { kind: 'invoice', customerId: customer, currency: 'USD', total: '100.00', invoiceDate: '2026-03-01' } });
    const { rows: audits } = await t.db.admin.query(`SELECT entity_id, actor_id, before, after FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.invoice_issued' AND entity_id = ANY($2::text[])`, [orgId, ids]);
    expect(audits.map((a) => [a.entity_id, a.after.number]).sort()).toEqual(ids.map((id) => [id, numberOf[id]]).sort());
    expect(audits[0]).toMatchObject({ actor_id: accountant.id, before: { status: 'draft' }, after: { status: 'issued', rate: '1' } });
  });

  it('numbers past 999,999 keep every digit: the millionth invoice of a series is number 1000000, the next 1000001', async () => {
    await t.db.admin.query(`INSERT INTO finance.document_numbers (org_id, series, last_number) VALUES ($1, 'BIG-2026', 999999)`, [orgId]);
    const numbers = [];
    for (let k = 0; k < 2; k++) {
      const draft = await t.http.post(rUrl(orgId, 'invoices')).set(accountant.auth).send({ customerId: customer, invoiceDate: '2026-03-02', series: 'BIG', lines: [line()] }).expect(201);
      numbers.push((await t.http.post(rUrl(orgId, `invoices/${draft.body.id}/issue`)).set(accountant.auth).send({}).expect(200)).body.number);
    }
    expect(numbers).toEqual(['BIG-2026-1000000', 'BIG-2026-1000001']);
  });

  it('an issue whose number cannot be taken (the series locked past the lock timeout) writes nothing, and the number is not lost', async () => {
    const draft = (series: string) => t.http.post(rUrl(orgId, 'invoices')).set(accountant.auth).send({ customerId: customer, invoiceDate: '2026-03-03', series, lines: [line()] }).expect(201);
    const first = await draft('LCK');
    expect((await t.http.post(rUrl(orgId, `invoices/${first.body.id}/issue`)).set(accountant.auth).send({}).expect(200)).body.number).toBe('LCK-2026-000001');
    const second = (await draft('LCK')).body.id as string;
    const entriesBefore = await count('journal_entries');
    // the issue that waits goes to a second application over this database whose lock timeout is 1 s: this file's waits
    // up to 30 s (createTestApp's, for the twenty parallel issues above on a loaded machine), which this test spent idle
    const short = await startApp({ ...t.config, database: { ...t.config.database, lockTimeoutMs: 1000 } });
    const holder = await t.db.admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT last_number FROM finance.document_numbers WHERE org_id = $1 AND series = 'LCK-2026' FOR UPDATE`, [orgId]);
      const res = await short.http.post(rUrl(orgId, `invoices/${second}/issue`)).set(accountant.auth).send({});
      expect([res.status, res.body.error?.code]).toEqual([503, 'database_timeout']);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
      await short.app.close();
    }
    expect(short.contract.violations).toEqual([]);
    expect(await count('journal_entries')).toBe(entriesBefore);
    const { rows: [row] } = await t.db.admin.query(`SELECT status, number FROM finance.invoices WHERE id = $1`, [second]);
    expect(row).toEqual({ status: 'draft', number: null });
    const written = async () => (await t.db.admin.query(`SELECT (SELECT count(*) FROM core.outbox WHERE org_id = $1 AND payload->'payload'->>'invoiceId' = $2)::int AS events,
      (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND entity_id = $2 AND action = 'receivables.invoice_issued')::int AS audits`, [orgId, second])).rows[0];
    expect(await written()).toEqual({ events: 0, audits: 0 });
    expect((await t.http.post(rUrl(orgId, `invoices/${second}/issue`)).set(accountant.auth).send({}).expect(200)).body.number).toBe('LCK-2026-000002');
    expect(await written()).toEqual({ events: 1, audits: 1 });
  });

  it('a credit note takes its number after posting, as an issue does: against an issue of series CN holding its balance rows and the counter it waits, no deadlock (40P01)', async () => {
    // invoices of series CN and credit notes share the counter CN-<year>. An issue posts (its balance rows locked), then
    // takes the counter; a credit note that took the counter first and then posted could wait for the issue's balance
    // rows while the issue waits for the counter: a deadlock (40P01) whenever the two post into the same balance slot
    // (the backend's pid % 8). The test plays that issue on a raw connection in the credit note's own slot
    const buyer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Counter Buyer' }).expect(201)).body.id as string;
    const inv = await issueInvoice(t, orgId, owner, { customerId: buyer, invoiceDate: '2026-03-20', lines: [line()] });
    const cnSeries = (await t.http.post(rUrl(orgId, 'invoices')).set(accountant.auth).send({ customerId: buyer, invoiceDate: '2026-03-22', series: 'CN', lines: [line()] }).expect(201)).body.id as string;
    const lastNumber = async () => Number((await t.db.admin.query(`SELECT coalesce(max(last_number), 0) AS n FROM finance.document_numbers WHERE org_id = $1 AND series = 'CN-2026'`, [orgId])).rows[0].n);
    const last = await lastNumber();
    const paused = pauseNext(ledgerRepository, 'post'); // the credit note's posting
    const credit = t.http.post(rUrl(orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-21' }).then((r) => r);
    const issue = await t.db.admin.connect();
    let counter: Promise<unknown> | undefined;
    let creditWaited = false;
    try {
      await paused.reached;
      const issuePid = (await issue.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await issue.query('BEGIN');
      // the issue's posting: the AR balance row of the slot the credit note posts into, then its last statement: the counter
      await issue.query(`INSERT INTO finance.account_balances (org_id, account_id, currency, slot) VALUES ($1, $2, 'USD', $3)
        ON CONFLICT ON CONSTRAINT account_balances_pkey DO UPDATE SET line_count = finance.account_balances.line_count`, [orgId, acc['1200'], paused.backend! % 8]);
      counter = issue.query(`INSERT INTO finance.document_numbers (org_id, series, last_number) VALUES ($1, 'CN-2026', 1)
        ON CONFLICT (org_id, series) DO UPDATE SET last_number = finance.document_numbers.last_number + 1 RETURNING last_number`, [orgId])
        .then(() => 'numbered', (err: { code?: string }) => err.code);
      let counterDone = false;
      void counter.then(() => (counterDone = true));
      // the counter is taken at once (the credit note holds it not); with the old order it waits for the paused credit note
      await until('the issue takes the counter or waits for it', async () => counterDone || (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [issuePid])).rows[0].n === 1, 1500, 20);
      paused.release();
      // the credit note posts and waits for the issue's balance row (with the old order PostgreSQL finds the cycle and
      // cancels one of the two)
      let creditDone = false;
      void credit.then(() => (creditDone = true));
      await until('the credit note waits for the issue, or a deadlock ends one', async () => {
        if (creditDone || (counterDone && (await counter) !== 'numbered')) return true;
        creditWaited = (await t.db.admin.query(`SELECT $2::int = ANY(pg_blocking_pids($1)) AS w`, [paused.backend, issuePid])).rows[0].w;
        return creditWaited;
      }, 1500, 20);
      expect(await counter).toBe('numbered');
    } finally {
      releaseAll();
      await counter;
      await issue.query('ROLLBACK'); // the issue gives its number back
      issue.release();
    }
    const res = await credit;
    expect([res.status, res.body.number, creditWaited]).toEqual([201, `CN-2026-${String(last + 1).padStart(6, '0')}`, true]);
    const { rows: [cn] } = await t.db.admin.query(`SELECT i.status, i.number, e.memo, e.source_ref::text AS source_ref FROM finance.invoices i
      JOIN finance.journal_entries e ON e.org_id = i.org_id AND e.id = i.entry_id WHERE i.id = $1`, [res.body.id]);
    expect(cn).toEqual({ status: 'issued', number: res.body.number, memo: `Credit note for ${inv.number}`, source_ref: res.body.id });
    expect((await t.db.admin.query(`SELECT payload->'payload'->>'number' AS number FROM core.outbox WHERE org_id = $1 AND payload->>'type' = 'invoice.issued'
      AND payload->'payload'->>'invoiceId' = $2`, [orgId, res.body.id])).rows).toEqual([{ number: res.body.number }]);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    // the invoice of series CN takes the next number of the same counter: gapless, no number twice
    expect((await t.http.post(rUrl(orgId, `invoices/${cnSeries}/issue`)).set(accountant.auth).send({}).expect(200)).body.number).toBe(`CN-2026-${String(last + 2).padStart(6, '0')}`);
    expect(await lastNumber()).toBe(last + 2);
  });

  it('20 parallel allocations of the whole open amount: exactly one succeeds, the others are clear 409s', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-02', lines: [line({ unitPrice: '250.00' })] });
    const paymentsBefore = await count('customer_payments');
    const results = await Promise.all(Array.from({ length: 20 }, () => t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-03-03', amount: '250.00', depositAccountId: acc['1100'], method: 'bank_transfer', allocations: [{ invoiceId: inv.id, amount: '250.00' }] })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    const refused = results.filter((r) => r.status !== 201);
    expect(refused.map((r) => [r.status, r.body.error.code])).toEqual(Array(19).fill([409, 'receivables.over_allocation']));
    expect(await count('customer_payments')).toBe(paymentsBefore + 1);
    const { rows } = await t.db.admin.query(`SELECT sum(amount)::text AS s FROM finance.receivable_allocations WHERE org_id = $1 AND invoice_id = $2`, [orgId, inv.id]);
    expect(rows[0].s).toBe('250.0000');
  });

  it('an invoice id in upper case is the same invoice: allocating it twice over is a 409 over_allocation, nothing written; ids in paths too', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-04-01', lines: [line()] });
    const both = [{ invoiceId: inv.id, amount: '100.00' }, { invoiceId: inv.id.toUpperCase(), amount: '100.00' }];
    const tables = ['customer_payments', 'receivable_allocations', 'journal_entries', 'audit_logs'];
    const written = () => Promise.all(tables.map((x) => x === 'audit_logs'
      ? t.db.admin.query(`SELECT count(*)::int AS n FROM core.audit_logs WHERE org_id = $1`, [orgId]).then((r) => r.rows[0].n as number) : count(x)));
    const before = await written();
    const paid = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-04-02', amount: '200.00', depositAccountId: acc['1100'], method: 'cash', allocations: both }).expect(409);
    // the service's own check (it takes the two spellings for one invoice), not only the database's
    expect(paid.body.error).toMatchObject({ code: 'receivables.over_allocation', details: { invoiceId: inv.id, open: '0.00' } });
    expect(await written()).toEqual(before);
    const credit = (await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-04-02', amount: '200.00', depositAccountId: acc['1100'], method: 'cash' }).expect(201)).body;
    const mid = await written();
    const later = await t.http.post(rUrl(orgId, `payments/${credit.id}/allocations`)).set(owner.auth).send({ date: '2026-04-03', allocations: both }).expect(409);
    expect(later.body.error).toMatchObject({ code: 'receivables.over_allocation', details: { invoiceId: inv.id, open: '0.00' } });
    expect(await written()).toEqual(mid);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '100.00' });
    // the payment's id in the path in upper case: the same payment, answered and audited under its id as stored
    const ok = await t.http.post(rUrl(orgId, `payments/${credit.id.toUpperCase()}/allocations`)).set(owner.auth)
      .send({ date: '2026-04-03', allocations: [{ invoiceId: inv.id.toUpperCase(), amount: '100.00' }] }).expect(201);
    expect(ok.body).toMatchObject({ id: credit.id, unallocated: '100.00', allocations: [expect.objectContaining({ invoiceId: inv.id, amount: '100.00' })] });
    const { rows: audits } = await t.db.admin.query(`SELECT entity_id, after->'allocations' AS allocations FROM core.audit_logs WHERE org_id = $1 AND action = 'receivables.payment_allocated'
      AND lower(entity_id) = $2`, [orgId, credit.id]);
    expect(audits).toEqual([{ entity_id: credit.id, allocations: [{ invoiceId: inv.id, amount: '100.00' }] }]);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id.toUpperCase()}`)).set(owner.auth).expect(200)).body).toMatchObject({ id: inv.id, status: 'paid', openAmount: '0.00' });
  });

  it('the database refuses allocations beyond an invoice\'s total or a payment\'s amount, whoever writes them, also two in flight at once', async () => {
    // an organization of its own: the allocation committed here has no journal entry (the aging property above reads this one's)
    const other = await registerUser(t, 'backstop-owner');
    const otherOrg = await createOrg(t, other, 'Backstop Ltd');
    const o = await setupReceivables(t, otherOrg, other);
    const invoice = async () => (await issueInvoice(t, otherOrg, other, { customerId: o.customer, invoiceDate: '2026-04-01',
      lines: [{ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: o.acc['4100'] }] })).id as string;
    const [inv1, inv2] = [await invoice(), await invoice()];
    const pay = (await t.http.post(rUrl(otherOrg, 'payments')).set(other.auth)
      .send({ customerId: o.customer, date: '2026-04-02', amount: '100.00', depositAccountId: o.acc['1100'], method: 'cash' }).expect(201)).body.id as string;
    const insert = (rows: [string, string][]) => `INSERT INTO finance.receivable_allocations (org_id, invoice_id, payment_id, allocation_date, amount, invoice_base, source_base)
      VALUES ${rows.map(([invoiceId, amount]) => `('${otherOrg}', '${invoiceId}', '${pay}', '2026-04-02', ${amount}, ${amount}, ${amount})`).join(', ')}`;
    const clients: pg.Client[] = [];
    const claims = { sub: other.id, org_id: otherOrg };
    try {
      // one statement of two rows, over the invoice's total; one row over what is left of the payment
      const a = await openTenantTransaction(t.db.apiUrl, claims, clients);
      await expect(a.c.query(insert([[inv1, '60'], [inv1, '60']]))).rejects.toMatchObject({ code: '23514', hint: 'receivables.over_allocation' });
      await a.c.query('ROLLBACK');
      const b = await openTenantTransaction(t.db.apiUrl, claims, clients);
      await b.c.query(insert([[inv1, '60']]));
      await expect(b.c.query(insert([[inv2, '60']]))).rejects.toMatchObject({ code: '23514', hint: 'receivables.exceeds_payment' });
      await b.c.query('ROLLBACK');
      // two writers in flight: the second waits for the first, then counts what it committed
      const first = await openTenantTransaction(t.db.apiUrl, claims, clients);
      const second = await openTenantTransaction(t.db.apiUrl, claims, clients);
      await first.c.query(insert([[inv1, '60']]));
      const waiting = second.c.query(insert([[inv1, '60']])).then(() => 'inserted', (e) => e);
      await until('the second writer waits for the first', async () => (await t.db.admin.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [second.pid])).rows[0]?.wait_event_type === 'Lock');
      await first.c.query('COMMIT');
      expect(await waiting).toMatchObject({ code: '23514', hint: 'receivables.over_allocation' });
      await second.c.query('ROLLBACK');
    } finally {
      for (const c of clients) await c.end();
    }
    const { rows } = await t.db.admin.query(`SELECT invoice_id, sum(amount)::text AS settled FROM finance.receivable_allocations WHERE org_id = $1 GROUP BY 1`, [otherOrg]);
    expect(rows).toEqual([{ invoice_id: inv1, settled: '60.0000' }]);
  });

  it('a direct writer of an allocation waits for the service allocating the same payment, then counts what it committed: no deadlock (40P01)', async () => {
    // an organization of its own (the aging property above reads this one's); the service holds the payment's lock, paused
    // before it locks the invoice. The writer's row would have locked the invoice (its foreign key check) before its
    // checks took the payment's lock: each waiting for the other, PostgreSQL cancelled the writer
    const other = await registerUser(t, 'lock-order-owner');
    const otherOrg = await createOrg(t, other, 'Lock Order Ltd');
    const o = await setupReceivables(t, otherOrg, other);
    const inv = (await issueInvoice(t, otherOrg, other, { customerId: o.customer, invoiceDate: '2026-04-01',
      lines: [{ description: 'Service', quantity: '1', unitPrice: '100.00', revenueAccountId: o.acc['4100'] }] })).id as string;
    const pay = (await t.http.post(rUrl(otherOrg, 'payments')).set(other.auth)
      .send({ customerId: o.customer, date: '2026-04-02', amount: '100.00', depositAccountId: o.acc['1100'], method: 'cash' }).expect(201)).body.id as string;
    const clients: pg.Client[] = [];
    try {
      const paused = pauseNext(receivablesRepository, 'lockInvoices');
      const service = t.http.post(rUrl(otherOrg, `payments/${pay}/allocations`)).set(other.auth).send({ date: '2026-04-02', allocations: [{ invoiceId: inv, amount: '60.00' }] }).then((r) => r);
      await paused.reached;
      const direct = await openTenantTransaction(t.db.apiUrl, { sub: other.id, org_id: otherOrg }, clients);
      const written = direct.c.query(`INSERT INTO finance.receivable_allocations (org_id, invoice_id, payment_id, allocation_date, amount, invoice_base, source_base)
        VALUES ('${otherOrg}', '${inv}', '${pay}', '2026-04-02', 60, 60, 60)`).then(() => 'inserted', (e) => e);
      await until('the direct writer waits for the payment', async () => (await t.db.admin.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [direct.pid])).rows[0]?.wait_event_type === 'Lock');
      paused.release();
      expect((await service).status).toBe(201);
      expect(await written).toMatchObject({ code: '23514', hint: 'receivables.over_allocation' });
      await direct.c.query('ROLLBACK');
    } finally {
      releaseAll();
      for (const c of clients) await c.end();
    }
    const { rows } = await t.db.admin.query(`SELECT amount::text FROM finance.receivable_allocations WHERE org_id = $1`, [otherOrg]);
    expect(rows).toEqual([{ amount: '60.0000' }]);
  });

  it('un-allocating adds a reversing row; the invoice is open again; a second reversal is a 409', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-04', lines: [line()] });
    const pay = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-03-05', amount: '150.00', depositAccountId: acc['1100'], method: 'cash', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(201);
    expect(pay.body.unallocated).toBe('50.00');
    const allocationId = pay.body.allocations[0].id;
    const rev = await t.http.post(rUrl(orgId, `allocations/${allocationId}/reverse`)).set(owner.auth).send({ date: '2026-03-06' }).expect(201);
    expect(rev.body.unallocated).toBe('150.00');
    expect(rev.body.allocations.map((a: any) => [a.amount, a.reversesAllocationId])).toEqual([['100.00', null], ['-100.00', allocationId]]);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '100.00' });
    const again = await t.http.post(rUrl(orgId, `allocations/${allocationId}/reverse`)).set(owner.auth).send({}).expect(409);
    expect(again.body.error.code).toBe('receivables.already_reversed');
    // the customer credit is allocated later
    const later = await t.http.post(rUrl(orgId, `payments/${pay.body.id}/allocations`)).set(owner.auth).send({ date: '2026-03-07', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(201);
    expect(later.body.unallocated).toBe('50.00');
  });

  it('the journal entry of an invoice or a payment is not reversed alone: 422 naming the document, nothing written; the void still reverses it', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-08', lines: [line()] });
    const pay = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-03-09', amount: '30.00', depositAccountId: acc['1100'], method: 'cash', reference: 'TRX-77' }).expect(201);
    const entriesBefore = await count('journal_entries');
    const reverse = (entryId: string) => t.http.post(ledgerUrl(orgId, `journal-entries/${entryId}/reverse`)).set(accountant.auth).send({ date: '2026-03-10' });
    const ofInvoice = await reverse(inv.entryId).expect(422);
    expect(ofInvoice.body.error).toMatchObject({
      code: 'ledger.entry_of_document',
      message: `journal entry ${inv.entryId} belongs to invoice ${inv.number} (void it, or issue a credit note): correct it there, so the document and the ledger stay in step`,
    });
    const ofPayment = await reverse(pay.body.entryId).expect(422);
    expect(ofPayment.body.error.message).toContain(`belongs to customer payment TRX-77 (reverse its allocations, refund its credit)`);
    expect(await count('journal_entries')).toBe(entriesBefore);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '100.00' });
    // the document's own correction reverses it
    const voided = await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-03-10' }).expect(200);
    expect((await t.http.get(ledgerUrl(orgId, `journal-entries/${inv.entryId}`)).set(owner.auth).expect(200)).body.reversedByEntryId).toBe(voided.body.voidEntryId);
    // an entry no document owns is reversed as before
    const manual = await t.http.post(ledgerUrl(orgId, 'journal-entries')).set(accountant.auth)
      .send({ date: '2026-03-10', source: 'invoice', sourceRef: 'EXT-1', lines: [{ accountId: acc['1100'], debit: '5' }, { accountId: acc['4100'], credit: '5' }] }).expect(201);
    await reverse(manual.body.id).expect(201);
  });

  it('voids an issued invoice with its reversal; refuses the void once a payment is allocated; drafts are editable and deletable', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-08', lines: [line()] });
    const voided = await t.http.post(rUrl(orgId, `invoices/${inv.id}/void`)).set(owner.auth).send({ date: '2026-03-09' }).expect(200);
    expect(voided.body).toMatchObject({ status: 'void', voidedOn: '2026-03-09', openAmount: '0.00' });
    const rev = (await t.http.get(ledgerUrl(orgId, `journal-entries/${voided.body.voidEntryId}`)).set(owner.auth).expect(200)).body;
    expect(rev.reversesEntryId).toBe(inv.entryId);
    const paid = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-08', lines: [line()] });
    await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: customer, date: '2026-03-09', amount: '10.00', depositAccountId: acc['1100'], method: 'cash', allocations: [{ invoiceId: paid.id, amount: '10.00' }] }).expect(201);
    expect((await t.http.post(rUrl(orgId, `invoices/${paid.id}/void`)).set(owner.auth).send({}).expect(409)).body.error.code).toBe('receivables.has_allocations');
    // drafts
    const draft = await t.http.post(rUrl(orgId, 'invoices')).set(owner.auth).send({ customerId: customer, invoiceDate: '2026-03-10', lines: [line()] }).expect(201);
    const edited = await t.http.put(rUrl(orgId, `invoices/${draft.body.id}`)).set(owner.auth).send({ customerId: customer, invoiceDate: '2026-03-10', lines: [line({ quantity: '3', discountPercent: '10' })] }).expect(200);
    expect(edited.body).toMatchObject({ subtotal: '270.00', total: '270.00', status: 'draft', number: null });
    await t.http.delete(rUrl(orgId, `invoices/${draft.body.id}`)).set(owner.auth).expect(204);
    expect((await t.http.put(rUrl(orgId, `invoices/${paid.id}`)).set(owner.auth).send({ customerId: customer, invoiceDate: '2026-03-10', lines: [line()] }).expect(409)).body.error.code).toBe('receivables.not_draft');
    expect((await t.http.delete(rUrl(orgId, `invoices/${paid.id}`)).set(owner.auth).expect(409)).body.error.code).toBe('receivables.not_draft');
  });

  it('issued invoices, their lines and allocations cannot be updated or deleted by any API role (SQL level); the append-only tables refuse TRUNCATE even to the owner', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-11', lines: [line()] });
    const [alloc] = (await t.db.admin.query(`SELECT id FROM finance.receivable_allocations WHERE org_id = $1 LIMIT 1`, [orgId])).rows;
    for (const role of ['authenticated', 'service_role']) {
      const claims = JSON.stringify({ sub: owner.id, org_id: orgId, role: role === 'service_role' ? 'service_role' : 'authenticated' });
      for (const stmt of [
        `UPDATE finance.invoices SET total = 1 WHERE id = '${inv.id}'`,
        `UPDATE finance.invoices SET number = 'X' WHERE id = '${inv.id}'`,
        `DELETE FROM finance.invoices WHERE id = '${inv.id}'`,
        `UPDATE finance.invoice_lines SET unit_price = 1 WHERE invoice_id = '${inv.id}'`,
        `DELETE FROM finance.invoice_lines WHERE invoice_id = '${inv.id}'`,
        `UPDATE finance.receivable_allocations SET amount = 1 WHERE id = '${alloc.id}'`,
        `DELETE FROM finance.receivable_allocations WHERE id = '${alloc.id}'`,
        `DELETE FROM finance.customer_payments WHERE org_id = '${orgId}'`,
      ]) {
        // the API's transaction (claims verified by begin_request), or the privileged paths' role
        const client = role === 'authenticated'
          ? (await openTenantTransaction(t.db.apiUrl, { sub: owner.id, org_id: orgId }, [])).c
          : await t.db.admin.connect();
        try {
          if (role === 'service_role') {
            await client.query('BEGIN');
            await client.query(`SELECT set_config('request.jwt.claims', $1, true)`, [claims]);
            await client.query('SET LOCAL ROLE service_role');
          }
          await expect(client.query(stmt)).rejects.toThrow(/issued|append-only|permission denied/);
        } finally {
          await client.query('ROLLBACK');
          if (role === 'authenticated') await (client as pg.Client).end();
          else (client as pg.PoolClient).release();
        }
      }
    }
    // nor TRUNCATE, not even on the owner connection (it fires no row trigger): each append-only table's statement
    // trigger refuses it (CASCADE: the tables that reference it are emptied too, and the first named fires first)
    const appendOnly = ['customer_payments', 'receivable_allocations', 'revenue_recognition_runs', 'revenue_recognitions'];
    const counts = await Promise.all(appendOnly.map(count));
    const c = await t.db.admin.connect();
    try {
      for (const table of appendOnly.map((name) => `finance.${name}`)) {
        await c.query('BEGIN');
        await expect(c.query(`TRUNCATE ${table} CASCADE`)).rejects.toThrow(`${table} is append-only: TRUNCATE is not allowed`);
        await c.query('ROLLBACK');
      }
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
    expect(await Promise.all(appendOnly.map(count))).toEqual(counts);
    const { rows } = await t.db.admin.query(`SELECT total::text, number FROM finance.invoices WHERE id = $1`, [inv.id]);
    expect(rows[0]).toEqual({ total: '100.0000', number: inv.number });
  });

  it('refuses bad input with a 4xx naming the problem, and writes nothing', async () => {
    const other = await registerUser(t, 'other-owner');
    const otherOrg = await createOrg(t, other, 'Other Ltd');
    const { vat: otherVat, customer: otherCustomer } = await setupReceivables(t, otherOrg, other);
    const second = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Second' }).expect(201)).body.id;
    const invOfSecond = await issueInvoice(t, orgId, owner, { customerId: second, invoiceDate: '2026-03-12', lines: [line()] });
    const before = await Promise.all(['invoices', 'invoice_lines', 'customer_payments', 'receivable_allocations'].map(count));
    const entriesBefore = Number((await t.db.admin.query(`SELECT count(*) AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n);
    const inv = (body: object) => t.http.post(rUrl(orgId, 'invoices')).set(owner.auth).send({ customerId: customer, invoiceDate: '2026-03-12', lines: [line()], ...body });
    const pay = (body: object) => t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: customer, date: '2026-03-12', amount: '50.00', depositAccountId: acc['1100'], method: 'cash', ...body });
    const cases: [string, () => Promise<any>, number, string, RegExp][] = [
      ['unknown customer', () => inv({ customerId: otherCustomer }), 422, 'receivables.unknown_customer', /customerId/],
      ['a line on a group account', () => inv({ lines: [line({ revenueAccountId: acc['4000'] })] }), 422, 'receivables.account_not_postable', /lines\[0\]\.revenueAccountId.*group/],
      ['another organization\'s tax code', () => inv({ lines: [line({ taxCodeId: otherVat })] }), 422, 'receivables.unknown_tax_code', /lines\[0\]\.taxCodeId/],
      ['a negative quantity', () => inv({ lines: [line({ quantity: '-1' })] }), 400, 'receivables.invalid_amount', /lines\[0\]\.quantity/],
      ['a total that differs', () => inv({ total: '99.00' }), 400, 'receivables.total_mismatch', /total 99\.00 differs.*100\.00/],
      ['an allocation larger than the payment', () => pay({ allocations: [{ invoiceId: invOfSecond.id, amount: '60.00' }], customerId: second }), 422, 'receivables.exceeds_payment', /allocations\[0\]\.amount/],
      ['an allocation to another customer\'s invoice', () => pay({ allocations: [{ invoiceId: invOfSecond.id, amount: '10.00' }] }), 422, 'receivables.wrong_customer', /another customer/],
      // an array in the place of a line or an allocation: a 400 at its index (class-validator took it for a further list; the service answered 500)
      ['an array for a line', () => inv({ lines: [[line()], line()] }), 400, 'validation_failed', /^each element of lines must be an invoice line \(an object\)$/],
      ['an array for an allocation', () => pay({ allocations: [[{ invoiceId: invOfSecond.id, amount: '10.00' }]] }), 400, 'validation_failed', /^each element of allocations must be an allocation \(an object\)$/],
    ];
    // a date in a closed period
    const periods = (await t.http.get(ledgerUrl(orgId, 'fiscal-years')).set(owner.auth).expect(200)).body[0].periods;
    await t.http.post(ledgerUrl(orgId, `periods/${periods[1].id}/close`)).set(owner.auth).send({}).expect(200);
    const febDraft = await inv({ invoiceDate: '2026-02-10' }).expect(201);
    cases.push(['an invoice date in a closed period', () => t.http.post(rUrl(orgId, `invoices/${febDraft.body.id}/issue`)).set(owner.auth).send({}), 422, 'ledger.period_closed', /closed/]);
    cases.push(['a payment date in a closed period', () => pay({ date: '2026-02-15' }), 422, 'ledger.period_closed', /closed/]);
    const problems: string[] = [];
    for (const [name, call, status, code, message] of cases) {
      const res = await call();
      if (res.status !== status || res.body.error?.code !== code || !message.test(res.body.error?.message)) problems.push(`${name}: ${res.status} ${JSON.stringify(res.body.error)}`);
    }
    expect(problems).toEqual([]);
    const after = await Promise.all(['invoices', 'invoice_lines', 'customer_payments', 'receivable_allocations'].map(count));
    expect(after).toEqual([before[0] + 1, before[1] + 1, before[2], before[3]]); // only the February draft
    expect(Number((await t.db.admin.query(`SELECT count(*) AS n FROM finance.journal_entries WHERE org_id = $1`, [orgId])).rows[0].n)).toBe(entriesBefore);
    const draftAfter = (await t.http.get(rUrl(orgId, `invoices/${febDraft.body.id}`)).set(owner.auth).expect(200)).body;
    expect(draftAfter).toMatchObject({ status: 'draft', number: null });
    await t.http.post(ledgerUrl(orgId, `periods/${periods[1].id}/reopen`)).set(owner.auth).send({}).expect(200);
    await t.http.delete(rUrl(orgId, `invoices/${febDraft.body.id}`)).set(owner.auth).expect(204);
  });

  it('a date that is no day of the calendar (2026-02-30) is a 400 naming the field, in every body and query; nothing written', async () => {
    const invoice = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-20', lines: [line()] });
    const payment = (await t.http.post(rUrl(orgId, 'payments')).set(owner.auth)
      .send({ customerId: customer, date: '2026-03-21', amount: '150.00', depositAccountId: acc['1100'], method: 'cash', allocations: [{ invoiceId: invoice.id, amount: '100.00' }] }).expect(201)).body;
    const draft = { customerId: customer, invoiceDate: '2026-03-20', lines: [line()] };
    const draftId = (await t.http.post(rUrl(orgId, 'invoices')).set(owner.auth).send(draft).expect(201)).body.id;
    const tables = ['invoices', 'invoice_lines', 'customer_payments', 'receivable_allocations', 'customer_refunds', 'revenue_recognitions', 'journal_entries'];
    const before = await Promise.all(tables.map(count));
    const bad = '2026-02-30';
    const post = (path: string, body: object) => t.http.post(rUrl(orgId, path)).set(owner.auth).send(body);
    const get = (path: string, query: object) => t.http.get(rUrl(orgId, path)).set(owner.auth).query(query);
    const cases: [string, () => Promise<any>][] = [
      ['invoiceDate', () => post('invoices', { ...draft, invoiceDate: bad })],
      ['dueDate', () => post('invoices', { ...draft, dueDate: bad })],
      ['invoiceDate', () => t.http.put(rUrl(orgId, `invoices/${draftId}`)).set(owner.auth).send({ ...draft, invoiceDate: bad })],
      ['serviceStart', () => post('invoices', { ...draft, lines: [line({ serviceStart: bad, serviceEnd: '2026-03-31' })] })],
      ['serviceEnd', () => post('invoices', { ...draft, lines: [line({ serviceStart: '2026-03-01', serviceEnd: bad })] })],
      ['date', () => post(`invoices/${invoice.id}/void`, { date: bad })],
      ['date', () => post(`invoices/${invoice.id}/credit-notes`, { date: bad })],
      ['date', () => post('payments', { customerId: customer, date: bad, amount: '5.00', depositAccountId: acc['1100'], method: 'cash' })],
      ['date', () => post(`payments/${payment.id}/allocations`, { date: bad, allocations: [{ invoiceId: invoice.id, amount: '1.00' }] })],
      ['date', () => post(`payments/${payment.id}/refunds`, { date: bad, amount: '1.00' })],
      ['date', () => post(`allocations/${payment.allocations[0].id}/reverse`, { date: bad })],
      ['date', () => post('revenue-recognition/runs', { date: bad })],
      ['asOf', () => get('aging', { asOf: bad })],
      ['asOf', () => get(`invoices/${invoice.id}/revenue-schedule`, { asOf: bad })],
    ];
    const got: unknown[] = [];
    for (const [field, call] of cases) {
      const res = await call();
      got.push([field, res.status, res.body.error?.code, res.body.error?.message]);
    }
    expect(got).toEqual(cases.map(([field]) => [field, 400, 'validation_failed', `${field} must be a calendar date YYYY-MM-DD: ${bad} is no day of the calendar`]));
    expect(await Promise.all(tables.map(count))).toEqual(before);
    expect((await t.http.get(rUrl(orgId, `invoices/${draftId}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'draft', invoiceDate: '2026-03-20' });
    await t.http.delete(rUrl(orgId, `invoices/${draftId}`)).set(owner.auth).expect(204);
  });

  it('a credit note credits a line at most once in all, even when it names the line twice', async () => {
    const buyer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Credit Buyer' }).expect(201)).body.id;
    const inv = await issueInvoice(t, orgId, owner, { customerId: buyer, invoiceDate: '2026-03-20',
      lines: [line({ quantity: '5', taxCodeId: vat }), line({ quantity: '10' })] });
    expect(inv).toMatchObject({ subtotal: '1500.00', taxTotal: '100.00', total: '1600.00' });
    const credit = (lines: object[]) => t.http.post(rUrl(orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-21', lines });
    const before = await Promise.all(['invoices', 'invoice_lines', 'receivable_allocations', 'journal_entries'].map(count));
    for (const [lines, message] of [
      [[{ lineNo: 1 }, { lineNo: 1 }], /lines\[1\]\.quantity: line 1 has 0 left to credit/],
      [[{ lineNo: 1, quantity: '3' }, { lineNo: 1, quantity: '3' }], /lines\[1\]\.quantity: line 1 has 2 left to credit/],
    ] as const) {
      const res = await credit([...lines]).expect(422);
      expect(res.body.error).toMatchObject({ code: 'receivables.credit_lines', message: expect.stringMatching(message) });
    }
    expect(await Promise.all(['invoices', 'invoice_lines', 'receivable_allocations', 'journal_entries'].map(count))).toEqual(before);
    // the same line twice within what is left is one credit of the sum: 5 units, 500.00 of revenue and its 100.00 of VAT
    const cn = (await credit([{ lineNo: 1, quantity: '2' }, { lineNo: 1, quantity: '3' }]).expect(201)).body;
    expect(cn).toMatchObject({ subtotal: '500.00', taxTotal: '100.00', total: '600.00' });
    const entry = (await t.http.get(ledgerUrl(orgId, `journal-entries/${cn.entryId}`)).set(owner.auth).expect(200)).body;
    const by = (code: string) => entry.lines.filter((l: any) => l.accountCode === code).reduce((s: number, l: any) => s + Number(l.debit) - Number(l.credit), 0);
    expect([by('4100'), by('2200'), by('1200')]).toEqual([500, 100, -600]);
    await credit([{ lineNo: 1 }]).expect(422);
  });

  it('a credit note without lines credits what is left of the lines not credited in full yet', async () => {
    const buyer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Default Credit Buyer' }).expect(201)).body.id;
    const inv = await issueInvoice(t, orgId, owner, { customerId: buyer, invoiceDate: '2026-03-20', lines: [line({ quantity: '2' }), line({ quantity: '3' }), line({ quantity: '4' })] });
    const credit = (body: object) => t.http.post(rUrl(orgId, `invoices/${inv.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-21', ...body });
    await credit({ lines: [{ lineNo: 1 }, { lineNo: 2, quantity: '1' }] }).expect(201);
    // line 1 is credited in full: the default takes the 2 units left of line 2 and line 3 whole
    const rest = (await credit({}).expect(201)).body;
    expect(rest).toMatchObject({ kind: 'credit_note', total: '600.00' });
    expect(rest.lines.map((l: { creditedLineNo: number; quantity: string }) => [l.creditedLineNo, Number(l.quantity)])).toEqual([[2, 2], [3, 4]]);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
  });

  it('the credits of a line add up to its own rounded net and tax: the last takes exactly what is left', async () => {
    const buyer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Small Buyer' }).expect(201)).body.id;
    // 3 × 0.335 at 20 %: net 1.01, VAT 0.20; credited a unit at a time 0.34 + 0.33 + 0.34 and 0.07 + 0.06 + 0.07
    const small = await issueInvoice(t, orgId, owner, { customerId: buyer, invoiceDate: '2026-03-20', lines: [line({ quantity: '3', unitPrice: '0.335', taxCodeId: vat })] });
    expect(small).toMatchObject({ subtotal: '1.01', taxTotal: '0.20', total: '1.21' });
    const parts = [];
    for (let k = 0; k < 3; k++) {
      parts.push((await t.http.post(rUrl(orgId, `invoices/${small.id}/credit-notes`)).set(owner.auth).send({ date: '2026-03-21', lines: [{ lineNo: 1, quantity: '1' }] }).expect(201)).body);
    }
    expect(parts.map((p) => [p.subtotal, p.taxTotal])).toEqual([['0.34', '0.07'], ['0.33', '0.06'], ['0.34', '0.07']]);
    expect((await t.http.get(rUrl(orgId, `invoices/${small.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'paid', openAmount: '0.00' });
    const { rows: [sums] } = await t.db.admin.query(`SELECT sum(l.net_amount)::text AS net, sum(l.tax_amount)::text AS tax FROM finance.invoice_lines l
      JOIN finance.invoices i ON i.org_id = l.org_id AND i.id = l.invoice_id WHERE i.org_id = $1 AND i.credited_invoice_id = $2`, [orgId, small.id]);
    expect([Number(sums.net), Number(sums.tax)]).toEqual([1.01, 0.2]);
  });

  it('a payment settles an invoice no earlier than its invoice date: neither its own allocations nor later ones; nothing written', async () => {
    const payer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Early Payer' }).expect(201)).body.id;
    const inv = await issueInvoice(t, orgId, owner, { customerId: payer, invoiceDate: '2026-03-20', lines: [line()] });
    const before = await Promise.all(['customer_payments', 'receivable_allocations', 'journal_entries'].map(count));
    const early = await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: payer, date: '2026-03-19', amount: '100.00', depositAccountId: acc['1100'], method: 'cash',
      allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(400);
    expect(early.body.error).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/allocations\[0\]\.invoiceId: the allocation date 2026-03-19 is before the invoice date 2026-03-20/) });
    expect(await Promise.all(['customer_payments', 'receivable_allocations', 'journal_entries'].map(count))).toEqual(before);
    // customer credit received before the invoice, allocated later: dated on or after the invoice only
    const credit = (await t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: payer, date: '2026-03-10', amount: '100.00', depositAccountId: acc['1100'], method: 'cash' }).expect(201)).body;
    const allocationsBefore = await count('receivable_allocations');
    const later = await t.http.post(rUrl(orgId, `payments/${credit.id}/allocations`)).set(owner.auth).send({ date: '2026-03-15', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(400);
    expect(later.body.error).toMatchObject({ code: 'validation_failed', message: expect.stringMatching(/allocations\[0\]\.invoiceId: the allocation date 2026-03-15 is before the invoice date 2026-03-20/) });
    expect(await count('receivable_allocations')).toBe(allocationsBefore);
    expect((await t.http.get(rUrl(orgId, `invoices/${inv.id}`)).set(owner.auth).expect(200)).body).toMatchObject({ status: 'issued', openAmount: '100.00' });
    const onTime = (await t.http.post(rUrl(orgId, `payments/${credit.id}/allocations`)).set(owner.auth).send({ date: '2026-03-20', allocations: [{ invoiceId: inv.id, amount: '100.00' }] }).expect(201)).body;
    expect(onTime).toMatchObject({ unallocated: '0.00', allocations: [expect.objectContaining({ invoiceId: inv.id, amount: '100.00', date: '2026-03-20' })] });
  });

  it('viewers read but cannot write; a starter plan gets 402 for foreign-currency documents', async () => {
    await t.http.get(rUrl(orgId, 'invoices')).set(viewer.auth).expect(200);
    expect((await t.http.post(rUrl(orgId, 'customers')).set(viewer.auth).send({ name: 'Nope' }).expect(403)).body.error.code).toBe('forbidden.role');
    const starterOwner = await registerUser(t, 'starter');
    const starter = await createOrg(t, starterOwner, 'Starter Ltd');
    await onPlan(t, starter, 'starter');
    const s = await setupReceivables(t, starter, starterOwner, 'EUR');
    await t.http.post(rUrl(starter, 'invoices')).set(starterOwner.auth).send({ customerId: s.customer, invoiceDate: '2026-01-05', lines: [{ description: 'x', quantity: '1', unitPrice: '1.00', revenueAccountId: s.acc['4100'] }] }).expect(201);
    const usd = await t.http.post(rUrl(starter, 'invoices')).set(starterOwner.auth).send({ customerId: s.customer, currency: 'USD', invoiceDate: '2026-01-05', lines: [{ description: 'x', quantity: '1', unitPrice: '1.00', revenueAccountId: s.acc['4100'] }] }).expect(402);
    expect(usd.body.error).toMatchObject({ code: 'billing.feature_not_in_plan', details: expect.objectContaining({ feature: 'full_accounting' }) });
  });

  it('renders the issued invoice as a PDF whose text carries the figures', async () => {
    const inv = await issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: '2026-03-13',
      lines: [line({ description: 'Design work', quantity: '3', unitPrice: '120.00', taxCodeId: vat })] });
    const res = await t.http.get(rUrl(orgId, `invoices/${inv.id}/pdf`)).set(owner.auth).buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(res.headers['content-type']).toMatch(/application\/pdf/);
    const parser = new PDFParse({ data: new Uint8Array(res.body as Buffer) });
    const text = (await parser.getText()).text;
    await parser.destroy();
    for (const s of ['Rules Ltd', 'Alpha Ltd', inv.number, 'Invoice date: 2026-03-13', 'Due date: 2026-04-12', 'Design work | 3 | 120 | 0 | 360.00 | 72.00 | 432.00',
      'Tax VAT20 20% on 360.00: 72.00', 'Subtotal: 360.00 USD', 'Tax total: 72.00 USD', 'Total: 432.00 USD', 'Amount due: 432.00 USD']) expect(text).toContain(s);
  });

  it('property: for random documents the aging buckets add up to the total, which equals the AR control balance, at any date', async () => {
    const owner2 = await registerUser(t, 'prop');
    const org2 = await createOrg(t, owner2, 'Property Ltd');
    await onPlan(t, org2, 'professional');
    const s = await setupReceivables(t, org2, owner2);
    const c2 = (await t.http.post(rUrl(org2, 'customers')).set(owner2.auth).send({ name: 'Zeta' }).expect(201)).body.id;
    await t.http.post(ledgerUrl(org2, 'fx-rates/import')).set(owner2.auth).send({ rates: [{ currency: 'EUR', date: '2026-01-01', rate: '1.0837' }, { currency: 'EUR', date: '2026-03-01', rate: '1.1213' }] }).expect(201);
    const day = (n: number) => new Date(Date.UTC(2026, 0, 1 + n)).toISOString().slice(0, 10);
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ day: fc.integer({ min: 0, max: 150 }), cents: fc.integer({ min: 1, max: 500_000 }), eur: fc.boolean(), second: fc.boolean(), taxed: fc.boolean(), payPct: fc.integer({ min: 0, max: 120 }), payDay: fc.integer({ min: 0, max: 60 }) }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 0, max: 240 }),
      async (docs, asOfDay) => {
        for (const d of docs) {
          const currency = d.eur ? 'EUR' : 'USD';
          const cust = d.second ? c2 : s.customer;
          const inv = await issueInvoice(t, org2, owner2, { customerId: cust, currency, invoiceDate: day(d.day),
            lines: [{ description: 'p', quantity: '1', unitPrice: (d.cents / 100).toFixed(2), revenueAccountId: s.acc['4100'], ...(d.taxed ? { taxCodeId: s.vat } : {}) }] });
          if (d.payPct > 0) {
            const amount = (Math.round(Number(inv.total) * d.payPct) / 100).toFixed(2);
            const alloc = Math.min(Number(amount), Number(inv.total)).toFixed(2);
            // a share of a one-cent invoice can round to 0.00: a zero payment is rightly refused (400), so none is made
            if (Number(amount) > 0) await t.http.post(rUrl(org2, 'payments')).set(owner2.auth).send({ customerId: cust, currency, date: day(d.day + d.payDay), amount, depositAccountId: s.acc['1100'], method: 'other',
              allocations: Number(alloc) > 0 ? [{ invoiceId: inv.id, amount: alloc }] : [] }).expect(201);
          }
        }
        const asOf = day(asOfDay);
        const ag = (await t.http.get(rUrl(org2, `aging?asOf=${asOf}`)).set(owner2.auth).expect(200)).body;
        const sum = (xs: string[]) => xs.reduce((a, b) => a + Math.round(Number(b) * 100), 0);
        expect(sum(ag.totals.map((x: any) => x.amount))).toBe(Math.round(Number(ag.total) * 100));
        for (const r of ag.rows) expect(sum(r.buckets.map((x: any) => x.amount))).toBe(Math.round(Number(r.total) * 100));
        const bal = (await t.http.get(ledgerUrl(org2, `accounts/${s.acc['1200']}/balance?asOf=${asOf}`)).set(owner2.auth).expect(200)).body;
        expect(ag.total).toBe(bal.baseBalance);
      }), { numRuns: 12 });
    await expectOpenAmountsKept(t, org2);
  });

  it('keeps the open amount per document through concurrent allocations, reversals and voids; no API role writes it', async () => {
    await expectOpenAmountsKept(t, orgId);
    const [doc] = (await t.db.admin.query(`SELECT document_id FROM finance.receivable_open_amounts WHERE org_id = $1 LIMIT 1`, [orgId])).rows;
    for (const role of ['authenticated', 'service_role']) {
      const claims = JSON.stringify({ sub: owner.id, org_id: orgId, role });
      for (const stmt of [
        `UPDATE finance.receivable_open_amounts SET open_base = 0 WHERE document_id = '${doc.document_id}'`,
        `DELETE FROM finance.receivable_open_amounts WHERE document_id = '${doc.document_id}'`,
        `INSERT INTO finance.receivable_open_amounts (org_id, document_id, document_kind, customer_id, document_date, aged_from, base_amount, open_base)
         VALUES ('${orgId}', gen_random_uuid(), 'invoice', '${customer}', '2026-01-01', '2026-01-01', 1, 1)`,
        `SELECT finance.receivable_open_amounts_refresh('${orgId}')`,
      ]) {
        const client = await t.db.admin.connect();
        try {
          await client.query('BEGIN');
          await client.query(`SELECT set_config('request.jwt.claims', $1, true)`, [claims]);
          await client.query(`SET LOCAL ROLE ${role}`);
          await expect(client.query(stmt)).rejects.toThrow(/permission denied/);
        } finally {
          await client.query('ROLLBACK');
          client.release();
        }
      }
    }
  });
});
