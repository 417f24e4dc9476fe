import { Decimal } from '../../platform/decimal.js';

/** Money is decimal.js in TypeScript and a decimal string in JSON; never a float. */
export const D = (v: Decimal.Value): Decimal => new Decimal(v);

/** A decimal string with exactly `minorUnits` decimals (half-up, like SQL round() on positive numerics). */
export function fixed(v: Decimal.Value, minorUnits: number): string {
  return new Decimal(v).toDecimalPlaces(minorUnits, Decimal.ROUND_HALF_UP).toFixed(minorUnits);
}

/** The base value of `amount` at `rate`, rounded to the base currency's `baseMu` decimals. */
export const baseOf = (amount: Decimal.Value, rate: Decimal.Value, baseMu: number): Decimal => D(fixed(D(amount).times(rate), baseMu));

/**
 * The base value `amount` takes off an open item of `open` carried at `rate`: the difference of its rounded base values
 * before and after. Partial settlements then add up to the item's rounded base exactly: GBP 0.05 at 0.5 (base 0.03)
 * settled 0.01 at a time takes 0.01, 0.00, 0.01, 0.00, 0.01, never 0.01 five times (0.05, more than it carried).
 */
export const baseShare = (open: Decimal, amount: Decimal, rate: Decimal.Value, baseMu: number): Decimal =>
  baseOf(open, rate, baseMu).minus(baseOf(open.minus(amount), rate, baseMu));

/**
 * The largest amount a document computes (a line's net, tax and gross, its totals): what an amount field accepts back
 * (AMOUNT, platform/http/money.ts: at most 14 digits before the point), so a client can send any of them back (a
 * document's `total`) and none overflows the numeric(20, 4) columns or the ledger's bound below 10^16.
 */
export const MAX_AMOUNT = '99999999999999.9999';
/** Whether a computed amount fits what an amount field accepts (at most MAX_AMOUNT). */
export function fitsAmount(v: Decimal.Value): boolean {
  return new Decimal(v).abs().lte(MAX_AMOUNT);
}

/** Whether an amount is exact in a currency of `minorUnits` decimals (no digit beyond them). */
export function fitsMinorUnits(v: Decimal.Value, minorUnits: number): boolean {
  return new Decimal(v).decimalPlaces() <= minorUnits;
}

export interface TaxResult {
  net: string;
  tax: string;
  gross: string;
}

/**
 * THE tax calculation: every caller (journal lines with a tax code, the calculate endpoint,
 * receivables and payables later) goes through this function. `amount` is net for an exclusive
 * code and gross for an inclusive one; `ratePercent` is e.g. "20" for 20 %; the tax is rounded
 * half-up to the currency's minor unit and net + tax = gross always holds.
 */
export function computeTax(amount: Decimal.Value, ratePercent: Decimal.Value, inclusive: boolean, minorUnits: number): TaxResult {
  const a = new Decimal(amount);
  const rate = new Decimal(ratePercent).div(100);
  if (inclusive) {
    const gross = a.toDecimalPlaces(minorUnits, Decimal.ROUND_HALF_UP);
    const net = gross.div(rate.plus(1)).toDecimalPlaces(minorUnits, Decimal.ROUND_HALF_UP);
    return { net: net.toFixed(minorUnits), tax: gross.minus(net).toFixed(minorUnits), gross: gross.toFixed(minorUnits) };
  }
  const net = a.toDecimalPlaces(minorUnits, Decimal.ROUND_HALF_UP);
  const tax = net.times(rate).toDecimalPlaces(minorUnits, Decimal.ROUND_HALF_UP);
  return { net: net.toFixed(minorUnits), tax: tax.toFixed(minorUnits), gross: net.plus(tax).toFixed(minorUnits) };
}

/** A rate as every response gives it: 10 decimals (the precision rates are stored with). */
export function rateText(v: Decimal.Value): string {
  return new Decimal(v).toFixed(10);
}

/** Minor units of a currency (the ledger's currencies are reference data: finance.currencies). */
export type MinorUnits = (currency: string) => number;

interface EntryLike {
  baseCurrency: string;
  totalBase: string;
  lines: { currency: string; debit: string; credit: string; rate: string; baseDebit: string; baseCredit: string }[];
}

/**
 * THE formatting of a journal entry's amounts, for every response that carries one: debit and credit with
 * exactly their currency's minor units, base amounts and the total with the base currency's, rates with 10
 * decimals. The database stores 4 decimals for every currency; the posting function refuses more than the
 * currency has, so this never rounds a stored amount.
 */
export function formatEntry<T extends EntryLike>(e: T, units: MinorUnits): T {
  const base = units(e.baseCurrency);
  return {
    ...e,
    totalBase: fixed(e.totalBase, base),
    lines: e.lines.map((l) => ({
      ...l, debit: fixed(l.debit, units(l.currency)), credit: fixed(l.credit, units(l.currency)), rate: rateText(l.rate),
      baseDebit: fixed(l.baseDebit, base), baseCredit: fixed(l.baseCredit, base),
    })),
  };
}
