import type { TenantTx } from '../../platform/database/database.service.js';
import { requestHash } from '../../platform/http/idempotency-key.js';
import { LedgerErrors } from './ledger.errors.js';
import { ledgerRepository } from './ledger.repository.js';
import { D } from './money.js';

/**
 * How far a rate the client sends may stray from the rate table's (either way, as a fraction of the table's rate)
 * before it is refused: a mistyped rate (90000 for 0.9) would otherwise post a realized FX result of its own size.
 */
export const CLIENT_RATE_TOLERANCE = '0.2';

/** The figures a rate out of range was posted at with rateOverride, for the audit row. */
export interface RateOverride {
  rate: string;
  tableRate: string;
  tableDate: string;
  tolerance: string;
}

/**
 * Checks a rate the client sent (`rate`; undefined: none sent, the table's is used) for `currency` on `date` against the
 * rate table's latest rate on or before that date. Deviating by more than CLIENT_RATE_TOLERANCE it is a 422
 * ledger.rate_out_of_range, unless `override` (the request's rateOverride): then the figures, for the audit row. Without
 * a table rate the client's is taken as it is; a rate not positive is left to the posting (ledger.invalid_rate).
 * `field`: where the rate is in the request. Only for a currency other than the base (whose rate is always 1).
 */
export async function checkClientRate(tx: TenantTx, p: { currency: string; date: string; rate: string | undefined; override?: boolean; field: string }): Promise<RateOverride | undefined> {
  if (p.rate === undefined) return undefined;
  const sent = D(p.rate);
  if (!sent.gt(0)) return undefined;
  const table = await ledgerRepository.tableRateOn(tx.db, tx.orgId, p.currency, p.date);
  if (!table) return undefined;
  const tableRate = D(table.rate);
  if (sent.minus(tableRate).abs().lte(tableRate.times(CLIENT_RATE_TOLERANCE))) return undefined;
  const tolerance = `${D(CLIENT_RATE_TOLERANCE).times(100).toFixed()}%`;
  const figures = { rate: sent.toFixed(), tableRate: tableRate.toFixed(), tableDate: table.date, tolerance };
  if (p.override) return figures;
  throw LedgerErrors.error('ledger.rate_out_of_range',
    `${p.field}: the rate ${figures.rate} for ${p.currency} deviates from the rate table's ${figures.tableRate} (effective ${table.date}) by more than ${tolerance}; `
    + 'check it, or send rateOverride: true to post at it anyway', figures);
}

/**
 * paymentRequestHashes for a payment request of `currency` (undefined: the base currency) dated `date`, read from the
 * ledger's settings and rate table; with the books not started the request as sent (the payment is refused later, by
 * the check that refuses it without a key).
 */
export async function paymentHashesOf<T extends { currency?: string; rate?: string }>(tx: TenantTx, dto: T, date: string): Promise<{ requestHash: string; accepted: string[] }> {
  const settings = await ledgerRepository.settings(tx.db, tx.orgId);
  if (!settings) return { requestHash: requestHash(dto), accepted: [requestHash(dto)] };
  const currency = dto.currency ?? settings.baseCurrency;
  const foreign = currency !== settings.baseCurrency;
  const table = foreign ? await ledgerRepository.tableRateOn(tx.db, tx.orgId, currency, date) : undefined;
  return paymentRequestHashes(dto, currency, foreign, table?.rate);
}

/**
 * The Idempotency-Key hashes of a payment request (`dto`, with what else names it) that omits what has a default: the
 * hash to store, of the request with its currency resolved (`currency`; a request that sent it hashes as before), and
 * the hashes that mean the same request on a replay: the request as sent (what was stored before currencies were
 * resolved), and for a foreign currency the rate left out and the table's rate of the date (`tableRate`) sent, either
 * way. The stored hash keeps the rate as sent, so the retry of a request without one replays even after the table
 * changed.
 */
export function paymentRequestHashes<T extends { currency?: string; rate?: string }>(dto: T, currency: string, foreign: boolean, tableRate: string | undefined): { requestHash: string; accepted: string[] } {
  const resolved = { ...dto, currency };
  const accepted = [requestHash(dto), requestHash(resolved)];
  if (foreign && tableRate !== undefined) {
    // the table's rate as a client writes it, or as the API answers it (10 decimals)
    if (dto.rate === undefined) for (const rate of [D(tableRate).toFixed(), D(tableRate).toFixed(10)]) accepted.push(requestHash({ ...resolved, rate }));
    else if (D(dto.rate).eq(tableRate)) accepted.push(requestHash({ ...resolved, rate: undefined }));
  }
  return { requestHash: requestHash(resolved), accepted: [...new Set(accepted)] };
}

/** The OpenAPI description of a request's rateOverride (next to a rate the client may send). */
export const RATE_OVERRIDE_DOC = `Post at the rate sent even when it deviates from the rate table's latest rate of the currency on or before the date by more than ${Number(CLIENT_RATE_TOLERANCE) * 100} % `
  + '(without it: 422 ledger.rate_out_of_range, naming both rates, the table rate\'s date and the tolerance); the sent rate, the table\'s rate and its date are then recorded in the audit row '
  + '(rateOverride). Without a table rate on or before the date the rate sent is taken as it is';
