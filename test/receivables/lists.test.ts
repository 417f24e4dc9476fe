import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onPlan, orgWithRoles, registerUser, type RoleUsers, type TestUser } from '../support/factories.js';
import { issueInvoice, rUrl, setupReceivables } from './receivables-support.js';

/**
 * GET /receivables/customers (by name, search, archived, pages) and GET /receivables/payments (newest first, with
 * allocations, by customer, pages): what the pages hold is what the tables hold for this organization, never another's.
 */
describe('receivables: listing customers and payments', () => {
  let t: TestApp;
  let orgId: string;
  let users: RoleUsers;
  let acc: Record<string, string>;
  const c: Record<string, string> = {};
  const p: Record<string, string> = {};
  let invoiceId: string;
  let stranger: TestUser;
  let strangerCustomer: string;
  const get = (path: string, who: TestUser = users.viewer) => t.http.get(rUrl(orgId, path)).set(who.auth);
  const pay = async (customerId: string, date: string, amount: string, allocations: object[] = []) =>
    (await t.http.post(rUrl(orgId, 'payments')).set(users.accountant.auth)
      .send({ customerId, date, amount, depositAccountId: acc['1100'], method: 'bank_transfer', allocations }).expect(201)).body.id as string;

  beforeAll(async () => {
    t = await createTestApp();
    ({ orgId, users } = await orgWithRoles(t, 'Lists Ltd'));
    await onPlan(t, orgId, 'professional');
    ({ acc, customer: c.alpha } = await setupReceivables(t, orgId, users.owner, 'EUR')); // "Alpha Ltd", ap@alpha.example
    const customer = async (name: string, email: string) =>
      (await t.http.post(rUrl(orgId, 'customers')).set(users.accountant.auth).send({ name, email }).expect(201)).body.id as string;
    c.beta = await customer('beta GmbH', 'billing@beta.example');
    c.gamma = await customer('Gamma SA', 'ALPHA-desk@gamma.example');
    c.delta = await customer('Delta Oy', 'delta@delta.example');
    await t.http.post(rUrl(orgId, `customers/${c.delta}/archive`)).set(users.accountant.auth).send({}).expect(200);

    invoiceId = (await issueInvoice(t, orgId, users.accountant, {
      customerId: c.alpha, invoiceDate: '2026-01-20', lines: [{ description: 'Work', quantity: '1', unitPrice: '100.00', revenueAccountId: acc['4100'] }],
    })).id;
    p.alphaFeb = await pay(c.alpha, '2026-02-01', '100.00', [{ invoiceId, amount: '100.00' }]);
    p.betaFeb = await pay(c.beta, '2026-02-05', '40.00');
    p.alphaMar = await pay(c.alpha, '2026-03-01', '25.00');

    stranger = await registerUser(t, 'stranger');
    const strangerOrg = await createOrg(t, stranger, 'Stranger Ltd');
    await onPlan(t, strangerOrg, 'professional');
    const theirs = await setupReceivables(t, strangerOrg, stranger, 'EUR');
    strangerCustomer = theirs.customer; // also "Alpha Ltd"
    await t.http.post(rUrl(strangerOrg, 'payments')).set(stranger.auth)
      .send({ customerId: strangerCustomer, date: '2026-02-10', amount: '999.00', depositAccountId: theirs.acc['1100'], method: 'cash' }).expect(201);
  });
  afterAll(() => t.close());

  it('lists active customers by name, case-insensitively, in pages; archived ones on request; as the table holds them', async () => {
    const first = await get('customers?limit=2').expect(200);
    expect(first.body.items.map((x: { name: string }) => x.name)).toEqual(['Alpha Ltd', 'beta GmbH']);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await get(`customers?limit=2&cursor=${first.body.nextCursor}`).expect(200);
    expect(second.body.items.map((x: { name: string }) => x.name)).toEqual(['Gamma SA']);
    expect(second.body.nextCursor).toBeUndefined();
    const { rows } = await t.db.admin.query(
      'SELECT id, email FROM finance.customers WHERE org_id = $1 AND archived_at IS NULL ORDER BY lower(name), id', [orgId]);
    expect([...first.body.items, ...second.body.items].map((x: { id: string; email: string }) => ({ id: x.id, email: x.email }))).toEqual(rows);

    const all = (await get('customers?includeArchived=true').expect(200)).body.items;
    expect(all.map((x: { id: string }) => x.id)).toEqual([c.alpha, c.beta, c.delta, c.gamma]);
    expect(all.find((x: { id: string }) => x.id === c.delta).archivedAt).toEqual(expect.any(String));
    expect(all.filter((x: { archivedAt: string | null }) => x.archivedAt === null)).toHaveLength(3);
  });

  it('searches name and e-mail (case-insensitive, % and _ literal), only in this organization', async () => {
    const names = async (search: string) => (await get(`customers?search=${encodeURIComponent(search)}`).expect(200)).body.items.map((x: { id: string }) => x.id);
    expect(await names('ALPHA')).toEqual([c.alpha, c.gamma]); // Gamma by its e-mail; the stranger's "Alpha Ltd" never
    expect(await names('beta.example')).toEqual([c.beta]);
    expect(await names('%')).toEqual([]);
    expect(await names('_')).toEqual([]);
    expect(await names('delta')).toEqual([]); // archived
    expect((await get('customers').expect(200)).body.items.map((x: { id: string }) => x.id)).not.toContain(strangerCustomer);
  });

  it('lists payments newest first with their allocations and credit, by customer, in pages; as the table holds them', async () => {
    const all = (await get('payments').expect(200)).body;
    expect(all.items.map((x: { id: string }) => x.id)).toEqual([p.alphaMar, p.betaFeb, p.alphaFeb]);
    expect(all.nextCursor).toBeUndefined();
    const byId = Object.fromEntries(all.items.map((x: { id: string }) => [x.id, x]));
    expect(byId[p.alphaFeb]).toMatchObject({ customerId: c.alpha, date: '2026-02-01', amount: '100.00', currency: 'EUR', unallocated: '0.00', refunds: [],
      allocations: [expect.objectContaining({ invoiceId, amount: '100.00' })] });
    expect(byId[p.betaFeb]).toMatchObject({ customerId: c.beta, amount: '40.00', unallocated: '40.00', allocations: [] });
    const { rows } = await t.db.admin.query(
      `SELECT id, customer_id, payment_date::text AS date, amount::text FROM finance.customer_payments WHERE org_id = $1 ORDER BY payment_date DESC, id DESC`, [orgId]);
    expect(rows).toEqual(all.items.map((x: { id: string; customerId: string; date: string }) => ({ id: x.id, customer_id: x.customerId, date: x.date, amount: expect.any(String) })));
    expect(rows.map((r) => Number(r.amount))).toEqual([25, 40, 100]);

    const page1 = await get(`payments?customerId=${c.alpha}&limit=1`).expect(200);
    expect(page1.body.items.map((x: { id: string }) => x.id)).toEqual([p.alphaMar]);
    const page2 = await get(`payments?customerId=${c.alpha}&limit=1&cursor=${page1.body.nextCursor}`).expect(200);
    expect(page2.body.items.map((x: { id: string }) => x.id)).toEqual([p.alphaFeb]);
    expect(page2.body.nextCursor).toBeUndefined();
    // another organization's customer: none of its payments show here
    expect((await get(`payments?customerId=${strangerCustomer}`).expect(200)).body.items).toEqual([]);
  });

  it('refuses a bad cursor, bad filters and strangers, naming the problem', async () => {
    for (const path of ['customers?cursor=not-a-cursor', 'payments?cursor=not-a-cursor']) {
      expect((await get(path).expect(400)).body.error.code).toBe('pagination.cursor');
    }
    expect(JSON.stringify((await get('customers?includeArchived=yes').expect(400)).body.error)).toContain('includeArchived');
    expect(JSON.stringify((await get('customers?limit=0').expect(400)).body.error)).toContain('limit');
    expect(JSON.stringify((await get('payments?customerId=nope').expect(400)).body.error)).toContain('customerId');
    for (const path of ['customers', 'payments']) {
      const res = await get(path, stranger).expect(404);
      expect(res.body.error.code).toBe('organization.not_found');
      expect(res.text).not.toContain('Alpha');
    }
    await t.http.get(rUrl(orgId, 'payments')).expect(401);
  });

  it('pages customers one at a time by the lower(name) PostgreSQL orders by, also where JavaScript lowers a name differently (İ, final Σ): each once, in order', async () => {
    // JavaScript lowers 'İ' to 'i' + U+0307 and a word-final 'Σ' to 'ς'; PostgreSQL to 'i' and 'σ'. A cursor built in
    // JavaScript skipped "Izmir Ltd" after "İstanbul Ticaret" and served "ΣΟΦΟΣ ΑΕ" again and again
    for (const name of ['İstanbul Ticaret', 'Izmir Ltd', 'ΣΟΦΟΣ ΑΕ', 'Σωκράτης ΟΕ']) {
      await t.http.post(rUrl(orgId, 'customers')).set(users.accountant.auth).send({ name }).expect(201);
    }
    const { rows } = await t.db.admin.query<{ id: string; name: string; n: string }>(
      'SELECT id, name, lower(name) AS n FROM finance.customers WHERE org_id = $1 AND archived_at IS NULL ORDER BY lower(name), id', [orgId]);
    for (const name of ['İstanbul Ticaret', 'ΣΟΦΟΣ ΑΕ']) expect(name.toLowerCase()).not.toBe(rows.find((r) => r.name === name)!.n);
    const seen: string[] = [];
    const cursors: unknown[] = [];
    let cursor: string | undefined;
    // bounded: a cursor that serves its own row again would page for ever
    for (let i = 0; i <= rows.length; i++) {
      const res = await get(`customers?limit=1${cursor ? `&cursor=${cursor}` : ''}`).expect(200);
      seen.push(...res.body.items.map((x: { name: string }) => x.name));
      cursor = res.body.nextCursor;
      if (!cursor) break;
      cursors.push(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    }
    expect(seen).toEqual(rows.map((r) => r.name));
    expect(seen).toEqual(expect.arrayContaining(['İstanbul Ticaret', 'Izmir Ltd', 'ΣΟΦΟΣ ΑΕ', 'Σωκράτης ΟΕ']));
    // each cursor is the position the ORDER BY gave its row
    expect(cursors).toEqual(rows.slice(0, -1).map((r) => ({ n: r.n, i: r.id })));
    // a search is lowered as the names are: "İstanbul" finds its customer
    expect((await get(`customers?search=${encodeURIComponent('İstanbul')}`).expect(200)).body.items.map((x: { name: string }) => x.name)).toEqual(['İstanbul Ticaret']);
  });
});
