import { expect } from '@jest/globals';
import type { TestApp } from '../support/app.js';
import { createOrg, onPlan, type TestUser } from '../support/factories.js';
import { issueInvoice, rUrl, setupReceivables } from '../receivables/receivables-support.js';
import { createVendor, payablesUrl } from '../payables/payables-support.js';
import { ledgerUrl } from './ledger-support.js';

/** The EUR rates of most FX revaluation tests: 1.10 on Jan 15, 1.15 on Jan 31, 1.20 on Feb 10. */
export const EUR_RATES: Readonly<Record<string, string>> = { '2026-01-15': '1.10', '2026-01-31': '1.15', '2026-02-10': '1.20' };

/** Payables settings of the FX tests: AP on 2100, no approvals. */
export async function setupPayables(t: TestApp, orgId: string, owner: TestUser, acc: Record<string, string>) {
  await t.http.put(payablesUrl(orgId, 'settings')).set(owner.auth).send({ apAccountId: acc['2100'], approvalRules: [{ above: '0', approvals: 0, roles: ['owner'] }] }).expect(200);
}

/**
 * The books of the FX revaluation tests: an organization on the professional plan, base USD with receivables set up
 * (setupReceivables), the EUR `rates` (date → rate) imported and, unless `payables: false`, payables (setupPayables).
 * Answers the accounts by code and the reads the tests assert with: `balance` (an account's base balance as of a day),
 * `fxResult` (the FX result, realized and unrealized, a gain positive, booked by a day), `arAging` (the AR aging's total),
 * `expectAgingIsAr` / `expectAgingIsAp` (the control account and the aging both `want` on a day); `revalue` posts a
 * revaluation (the request: the caller expects its status).
 */
export async function fxLedger(t: TestApp, owner: TestUser, name: string, o: { rates?: Readonly<Record<string, string>>; payables?: boolean } = {}) {
  const orgId = await createOrg(t, owner, name);
  await onPlan(t, orgId, 'professional');
  const { acc } = await setupReceivables(t, orgId, owner, 'USD');
  await t.http.post(ledgerUrl(orgId, 'fx-rates/import')).set(owner.auth)
    .send({ rates: Object.entries(o.rates ?? EUR_RATES).map(([date, rate]) => ({ currency: 'EUR', date, rate })) }).expect(201);
  if (o.payables !== false) await setupPayables(t, orgId, owner, acc);
  const balance = async (code: string, asOf: string) =>
    (await t.http.get(ledgerUrl(orgId, `accounts/${acc[code]}/balance?asOf=${asOf}`)).set(owner.auth).expect(200)).body.baseBalance as string;
  const fxResult = async (asOf: string) => {
    let net = 0;
    for (const code of ['4300', '4310', '5500', '5510']) net -= Number(await balance(code, asOf));
    return net.toFixed(2);
  };
  const arAging = async (asOf: string) => (await t.http.get(rUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body.total as string;
  const expectAgingIsAr = async (asOf: string, want: string) => {
    expect({ asOf, ar: await balance('1200', asOf), aging: await arAging(asOf) }).toEqual({ asOf, ar: want, aging: want });
  };
  const expectAgingIsAp = async (asOf: string, want: string) => {
    const a = (await t.http.get(payablesUrl(orgId, `aging?asOf=${asOf}`)).set(owner.auth).expect(200)).body;
    expect({ asOf, ap: a.controlAccountBalance, aging: a.total }).toEqual({ asOf, ap: want, aging: want });
  };
  const revalue = (date: string, autoReverse = false) => t.http.post(ledgerUrl(orgId, 'fx-revaluations')).set(owner.auth).send({ date, autoReverse });
  return { orgId, acc, balance, fxResult, arAging, expectAgingIsAr, expectAgingIsAp, revalue };
}

/**
 * fxLedger with EUR trading: a customer (Euro GmbH) and a vendor (Euro Supplies) in EUR; `invoice` / `bill` issue one
 * of EUR 1,000.00 dated `date` (`documentDate`, Jan 15, unless told); `arPayment` / `apPayment` post a EUR payment to the
 * bank (1100), the body's other fields given (the request).
 */
export async function fxBooks(t: TestApp, owner: TestUser, name: string, o: { rates?: Readonly<Record<string, string>>; documentDate?: string } = {}) {
  const l = await fxLedger(t, owner, name, { rates: o.rates });
  const { orgId, acc } = l;
  const customer = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Euro GmbH', defaultCurrency: 'EUR' }).expect(201)).body.id as string;
  const vendor = await createVendor(t, orgId, owner, { name: 'Euro Supplies', defaultCurrency: 'EUR' });
  const invoice = async (date = o.documentDate ?? '2026-01-15') => issueInvoice(t, orgId, owner, { customerId: customer, invoiceDate: date,
    lines: [{ description: 'Licence', quantity: '1', unitPrice: '1000.00', revenueAccountId: acc['4100'] }] });
  const bill = async (date = o.documentDate ?? '2026-01-15') => {
    const draft = await t.http.post(payablesUrl(orgId, 'bills')).set(owner.auth).send({ vendorId: vendor, billDate: date, currency: 'EUR',
      lines: [{ accountId: acc['5200'], unitPrice: '1000.00' }] }).expect(201);
    return (await t.http.post(payablesUrl(orgId, `bills/${draft.body.id}/submit`)).set(owner.auth).send({}).expect(200)).body;
  };
  const arPayment = (body: object) => t.http.post(rUrl(orgId, 'payments')).set(owner.auth).send({ customerId: customer, currency: 'EUR', depositAccountId: acc['1100'], method: 'bank_transfer', ...body });
  const apPayment = (body: object) => t.http.post(payablesUrl(orgId, 'payments')).set(owner.auth).send({ vendorId: vendor, currency: 'EUR', bankAccountId: acc['1100'], ...body });
  return { ...l, customer, vendor, invoice, bill, arPayment, apPayment };
}

/**
 * FX revaluation entries posted as the old JournalService (before 20270208010100) posted them, through
 * finance.post_journal_entry, without item rows (what the backfill and the correction migrations replay): `oldRevaluation`,
 * one account's line at the rate, base only, against the unrealized FX account (`fx`: the gain and loss accounts' codes,
 * the settings' 4310 and 5510 unless given), audited as ledger.fx_revaluation_posted; `oldReversal`, its autoReverse
 * reversal as the old JournalService.reverse posted it (every line's sides swapped), audited as ledger.entry_reversed.
 */
export function oldFxEntries(t: TestApp, owner: TestUser, orgId: string, acc: Record<string, string>) {
  const claims = { sub: owner.id, org_id: orgId };
  const post = async (payload: object, action: string) => (await t.db.asApi(claims, 'authenticated', 'SELECT entry FROM finance.post_journal_entry($1::jsonb, $2::jsonb)',
    [JSON.stringify(payload), JSON.stringify({ action })]))[0].entry;
  const oldRevaluation = async (date: string, accountCode: string, rate: string, difference: string, fx = { gain: '4310', loss: '5510' }) => {
    const amount = difference.replace('-', '');
    const description = `FX revaluation of EUR at ${rate}`;
    const gain = !difference.startsWith('-');
    return await post({ date, memo: `FX revaluation as of ${date}`, source: 'system', lines: [
      { accountId: acc[accountCode], currency: 'EUR', rate, ...(gain ? { baseDebit: amount } : { baseCredit: amount }), description },
      gain ? { accountId: acc[fx.gain], credit: amount, description } : { accountId: acc[fx.loss], debit: amount, description }] },
    'ledger.fx_revaluation_posted') as { id: string; lines: { baseDebit: string; baseCredit: string }[] };
  };
  const oldReversal = async (entry: { id: string }, date: string, revaluedOn: string) => {
    const original = (await t.http.get(ledgerUrl(orgId, `journal-entries/${entry.id}`)).set(owner.auth).expect(200)).body;
    return await post({ date, memo: `Reversal of FX revaluation as of ${revaluedOn}`, source: 'system', reversesEntryId: entry.id, idempotencyKey: `reversal:${entry.id}`,
      lines: original.lines.map((l: any) => ({ accountId: l.accountId, currency: l.currency, rate: l.rate,
        ...(Number(l.credit) ? { debit: l.credit } : {}), ...(Number(l.debit) ? { credit: l.debit } : {}), baseDebit: l.baseCredit, baseCredit: l.baseDebit, description: l.description })) },
    'ledger.entry_reversed') as { id: string };
  };
  return { oldRevaluation, oldReversal };
}
