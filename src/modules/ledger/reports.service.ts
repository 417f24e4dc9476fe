import { Injectable } from '@nestjs/common';
import type { Decimal } from 'decimal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { decodeCursor, encodeCursor } from '../../platform/http/pagination.js';
import { ledgerRepository as repo, type Totals } from './ledger.repository.js';
import { LedgerService } from './ledger.service.js';
import { D, fixed } from './money.js';
import type {
  AccountBalanceDto, AccountDto, BalanceSheetDto, GeneralLedgerDto, GeneralLedgerQuery, ProfitAndLossDto, StatementRowDto, TrialBalanceDto,
} from './ledger.dto.js';

function dayBefore(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

/** Base-currency net (debit minus credit) per account. */
function baseNetByAccount(totals: Totals[]): Map<string, Decimal> {
  const m = new Map<string, Decimal>();
  for (const t of totals) m.set(t.account_id, (m.get(t.account_id) ?? D(0)).plus(t.base_debit).minus(t.base_credit));
  return m;
}

/**
 * Statement rows for the accounts of some types, each with its own amount plus its descendants'
 * (hierarchy roll-up), depth-first by code. `sign` turns debit-minus-credit into the type's natural sign.
 */
function rollUp(accounts: AccountDto[], net: Map<string, Decimal>, types: string[], sign: (type: string) => 1 | -1, mu: number): { rows: StatementRowDto[]; total: Decimal } {
  const mine = accounts.filter((a) => types.includes(a.type));
  const children = new Map<string | null, AccountDto[]>();
  for (const a of mine) {
    const parent = a.parentId && mine.some((p) => p.id === a.parentId) ? a.parentId : null;
    children.set(parent, [...(children.get(parent) ?? []), a]);
  }
  const rows: StatementRowDto[] = [];
  const visit = (a: AccountDto, depth: number): Decimal => {
    const row: StatementRowDto = { accountId: a.id, code: a.code, name: a.name, type: a.type, depth, isGroup: a.isGroup, amount: '' };
    rows.push(row);
    let sum = (net.get(a.id) ?? D(0)).times(sign(a.type));
    for (const c of (children.get(a.id) ?? []).sort((x, y) => x.code.localeCompare(y.code))) sum = sum.plus(visit(c, depth + 1));
    row.amount = fixed(sum, mu);
    return sum;
  };
  let total = D(0);
  for (const root of (children.get(null) ?? []).sort((x, y) => x.code.localeCompare(y.code))) total = total.plus(visit(root, 0));
  // archived accounts without an amount are left out
  const shown = rows.filter((r) => !D(r.amount).isZero() || !accounts.find((a) => a.id === r.accountId)!.archivedAt);
  return { rows: shown, total };
}

/** Balances and statements; all read balances or per-period totals, never a full scan of journal lines. */
@Injectable()
export class ReportsService {
  constructor(private readonly ledger: LedgerService) {}

  private async context(tx: TenantTx) {
    const s = await this.ledger.settings(tx);
    return { base: s.baseCurrency, mu: await this.ledger.currencyUnits(tx, s.baseCurrency), accounts: await this.ledger.listAccounts(tx, true) };
  }

  async accountBalance(tx: TenantTx, accountId: string, asOf?: string): Promise<AccountBalanceDto> {
    await this.ledger.getAccount(tx, accountId);
    const { base, mu } = await this.context(tx);
    const totals = asOf ? await repo.totals(tx.db, null, asOf, accountId) : await repo.runningTotals(tx.db, tx.orgId, accountId);
    const currencies = await Promise.all(totals.sort((a, b) => a.currency.localeCompare(b.currency)).map(async (t) => ({
      currency: t.currency,
      balance: fixed(D(t.debit).minus(t.credit), await this.ledger.currencyUnits(tx, t.currency)),
      baseBalance: fixed(D(t.base_debit).minus(t.base_credit), mu),
    })));
    const baseBalance = fixed(totals.reduce((s, t) => s.plus(t.base_debit).minus(t.base_credit), D(0)), mu);
    return { accountId, asOf: asOf ?? null, baseCurrency: base, baseBalance, currencies };
  }

  async trialBalance(tx: TenantTx, asOf?: string): Promise<TrialBalanceDto> {
    const s = await this.ledger.settings(tx);
    const mu = await this.ledger.currencyUnits(tx, s.baseCurrency);
    let dr = D(0);
    let cr = D(0);
    const rows = (await repo.trialBalance(tx.db, tx.orgId, asOf ?? null)).map((r) => {
      const n = D(r.net);
      if (n.gt(0)) dr = dr.plus(n);
      else cr = cr.minus(n);
      return { accountId: r.account_id, code: r.code, name: r.name, type: r.type, debit: fixed(n.gt(0) ? n : 0, mu), credit: fixed(n.lt(0) ? n.neg() : 0, mu) };
    });
    return { asOf: asOf ?? null, baseCurrency: s.baseCurrency, rows, totalDebit: fixed(dr, mu), totalCredit: fixed(cr, mu), balanced: dr.eq(cr) };
  }

  async profitAndLoss(tx: TenantTx, from: string, to: string): Promise<ProfitAndLossDto> {
    if (from > to) throw AppError.badRequest('ledger.range', 'from must not be after to');
    const { base, mu, accounts } = await this.context(tx);
    const net = baseNetByAccount(await repo.totals(tx.db, from, to));
    const revenue = rollUp(accounts, net, ['revenue'], () => -1, mu);
    const expenses = rollUp(accounts, net, ['expense'], () => 1, mu);
    return {
      from, to, baseCurrency: base, revenue: revenue.rows, expenses: expenses.rows,
      totalRevenue: fixed(revenue.total, mu), totalExpenses: fixed(expenses.total, mu), netIncome: fixed(revenue.total.minus(expenses.total), mu),
    };
  }

  /** assets = liabilities + equity + current earnings (revenue minus expenses not yet closed), checked. */
  async balanceSheet(tx: TenantTx, asOf: string): Promise<BalanceSheetDto> {
    const { base, mu, accounts } = await this.context(tx);
    const net = baseNetByAccount(await repo.totals(tx.db, null, asOf));
    const assets = rollUp(accounts, net, ['asset'], () => 1, mu);
    const liabilities = rollUp(accounts, net, ['liability'], () => -1, mu);
    const equity = rollUp(accounts, net, ['equity'], () => -1, mu);
    const earnings = accounts.filter((a) => a.type === 'revenue' || a.type === 'expense').reduce((s, a) => s.minus(net.get(a.id) ?? 0), D(0));
    return {
      asOf, baseCurrency: base, assets: assets.rows, liabilities: liabilities.rows, equity: equity.rows,
      totalAssets: fixed(assets.total, mu), totalLiabilities: fixed(liabilities.total, mu), totalEquity: fixed(equity.total, mu),
      currentEarnings: fixed(earnings, mu), balanced: assets.total.eq(liabilities.total.plus(equity.total).plus(earnings)),
    };
  }

  /** An account's lines in date order with the running base balance; the cursor carries the balance so far. */
  async generalLedger(tx: TenantTx, accountId: string, q: GeneralLedgerQuery): Promise<GeneralLedgerDto> {
    await this.ledger.getAccount(tx, accountId);
    if (q.from && q.to && q.from > q.to) throw AppError.badRequest('ledger.range', 'from must not be after to');
    const { base, mu } = await this.context(tx);
    const limit = q.limit ?? 50;
    const cursor = decodeCursor<{ d: string; s: string; r: string }>(q.cursor);
    if (cursor && (typeof cursor.d !== 'string' || typeof cursor.s !== 'string' || typeof cursor.r !== 'string')) {
      throw AppError.badRequest('pagination.cursor', 'cursor is not valid');
    }
    let running: Decimal;
    if (cursor) running = D(cursor.r);
    else if (q.from) running = (await repo.totals(tx.db, null, dayBefore(q.from), accountId)).reduce((s, t) => s.plus(t.base_debit).minus(t.base_credit), D(0));
    else running = D(0);
    const openingBalance = fixed(running, mu);
    const rows = await repo.generalLedger(tx.db, tx.orgId, accountId, q.from ?? null, q.to ?? null, cursor, limit);
    const items = rows.slice(0, limit).map((r) => {
      running = running.plus(r.base_debit).minus(r.base_credit);
      return {
        entryId: r.entry_id, lineNo: r.line_no, date: r.entry_date, memo: r.memo, description: r.description, currency: r.currency,
        debit: r.debit, credit: r.credit, baseDebit: r.base_debit, baseCredit: r.base_credit, runningBalance: fixed(running, mu),
        seq: r.seq,
      };
    });
    const last = items[items.length - 1];
    const nextCursor = rows.length > limit ? encodeCursor({ d: last.date, s: last.seq, r: running.toFixed() }) : undefined;
    return { accountId, baseCurrency: base, openingBalance, items: items.map(({ seq: _seq, ...i }) => i), nextCursor };
  }
}
