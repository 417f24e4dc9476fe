import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { AuditService } from '../audit/audit.service.js';
import { ControlAccounts } from '../ledger/control-accounts.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { ReportsService } from '../ledger/reports.service.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { receivablesRepository as repo, type CustomerRow } from './receivables.repository.js';
import type { CreateCustomerDto, CustomerDto, CustomerPage, CustomerQuery, ReceivablesSettingsDto, SetReceivablesSettingsDto, UpdateCustomerDto } from './receivables.dto.js';
import { D, fitsMinorUnits, fixed } from '../ledger/money.js';

/**
 * A credit limit is in the base currency, shown in its minor units (`baseMu`). Before the books are started there is
 * no base currency: a limit is shown as stored then, and one stored then that is finer than the base currency chosen
 * later stays as stored too (never rounded: the limit is what the organization set).
 */
const toDto = (c: CustomerRow, baseMu: number | undefined): CustomerDto => ({
  ...c, creditLimit: c.creditLimit === null ? null : baseMu !== undefined && fitsMinorUnits(c.creditLimit, baseMu) ? fixed(c.creditLimit, baseMu) : D(c.creditLimit).toFixed(),
});

/** Receivables settings and customers (parties). */
@Injectable()
export class CustomersService {
  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
    private readonly reports: ReportsService,
    private readonly controls: ControlAccounts,
  ) {}

  /**
   * The settings; for a flow that posts (the default), read under the posting lock held shared, so what it then posts to
   * AR is what a settings change saw. A read that posts nothing (GET settings) passes `{ posting: false }` and never
   * waits for a drain (a year-end close, a settings change).
   */
  async settings(tx: TenantTx, o: { posting: boolean } = { posting: true }): Promise<ReceivablesSettingsDto> {
    if (o.posting) await this.ledger.holdPostings(tx);
    const s = await repo.settings(tx.db, tx.orgId);
    if (!s) throw ReceivablesErrors.error('receivables.settings_missing', 'the receivables settings are not set: PUT /receivables/settings with the AR control account first');
    return s;
  }

  async setSettings(tx: TenantTx, dto: SetReceivablesSettingsDto): Promise<ReceivablesSettingsDto> {
    await this.ledger.drainPostings(tx);
    const before = (await repo.settings(tx.db, tx.orgId)) ?? null;
    const ar = await this.postableAccount(tx, dto.arAccountId, 'arAccountId', 'asset');
    // neither may be another subledger's control account (payables' AP): one account would carry two subledgers
    const named = [{ id: ar.id, code: ar.code, field: 'arAccountId' }];
    // invoices, payments and refunds post to the AR account of the settings: moved while the old one carries open items,
    // those would be settled on the new account and the old one would keep them for ever
    if (before && dto.arAccountId !== before.arAccountId) {
      await this.reports.assertControlAccountClear(tx, before.arAccountId, 'AR', (m) => ReceivablesErrors.error('receivables.control_account_in_use', m));
    }
    // recognition moves deferred revenue out of the account the settings name now: the same holds for it
    if (before?.deferredRevenueAccountId && (dto.deferredRevenueAccountId ?? null) !== before.deferredRevenueAccountId) {
      await this.reports.assertControlAccountClear(tx, before.deferredRevenueAccountId, 'deferred revenue', (m) => ReceivablesErrors.error('receivables.control_account_in_use', m));
    }
    if (dto.deferredRevenueAccountId) {
      const deferred = await this.postableAccount(tx, dto.deferredRevenueAccountId, 'deferredRevenueAccountId', 'liability');
      named.push({ id: deferred.id, code: deferred.code, field: 'deferredRevenueAccountId' });
    }
    await this.refuseControlAccounts(tx, named, { own: true });
    // an account the settings make a control account starts with nothing: the AR aging (the revenue schedules) starts
    // empty and could never explain a balance already there, nor could a manual entry clear it once it is one
    const current = new Set([before?.arAccountId, before?.deferredRevenueAccountId].filter((x): x is string => !!x).map((x) => x.toLowerCase()));
    for (const a of named) {
      if (current.has(a.id.toLowerCase())) continue;
      const carried = await this.reports.carried(tx, a.id);
      if (carried.length) {
        throw ReceivablesErrors.error('receivables.account_carries_balance', `${a.field}: account ${a.code} carries ${carried.join(', ')} that no invoice, credit note or payment explains; `
          + 'a control account of receivables carries only what its documents post to it: clear it first (reverse the entry, or move its balance to another account) or name another account');
      }
    }
    await repo.setSettings(tx.db, tx.orgId, dto.arAccountId, dto.deferredRevenueAccountId ?? null);
    const after = await this.settings(tx);
    await this.audit.record(tx, { action: 'receivables.settings_updated', entityType: 'receivables_settings', entityId: tx.orgId, before, after });
    return after;
  }

  /**
   * An account of this organization of `type` that can take postings (a 422 naming the field otherwise): AR and a
   * deposit or refund account are assets, deferred revenue a liability, a line's revenue account revenue.
   */
  async postableAccount(tx: TenantTx, id: string, field: string, type: 'asset' | 'liability' | 'revenue') {
    const a = await this.ledger.getAccount(tx, id).catch((err) => {
      if (err instanceof AppError && err.status === 404) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${id} does not exist in this organization`);
      throw err;
    });
    if (a.isGroup) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${a.code} is a group account; use one of its children`);
    if (a.archivedAt) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${a.code} is archived`);
    if (a.type !== type) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${a.code} is a${a.type === 'asset' || a.type === 'equity' || a.type === 'expense' ? 'n' : ''} ${a.type} account, not a${type === 'asset' ? 'n' : ''} ${type} account`);
    return a;
  }

  /**
   * 422 receivables.control_account when one of `accounts` (what a document takes from the client, or the settings'
   * accounts) is a control account of a subledger (ControlAccounts.refuse); `own`: set by the settings, which may name
   * receivables' own again.
   */
  refuseControlAccounts(tx: TenantTx, accounts: { id: string; code: string; field: string }[], o: { own?: boolean } = {}): Promise<void> {
    return this.controls.refuse(tx, accounts, (m) => ReceivablesErrors.error('receivables.control_account', m), o.own ? { own: 'receivables' } : {});
  }

  /** A deposit or refund account: a postable asset account that is no control account (AR's balance is its open items). */
  async cashAccount(tx: TenantTx, id: string, field: string): Promise<void> {
    const a = await this.postableAccount(tx, id, field, 'asset');
    await this.refuseControlAccounts(tx, [{ id: a.id, code: a.code, field }]);
  }

  /**
   * The minor units credit limits are shown in (undefined before the books are started); a limit given once they are
   * is an amount in the base currency and may be no finer, like any amount of a currency.
   */
  private async limitUnits(tx: TenantTx, creditLimit?: string | null): Promise<number | undefined> {
    const baseMu = await this.ledger.baseCurrencyUnits(tx);
    if (creditLimit != null && baseMu !== undefined && !fitsMinorUnits(creditLimit, baseMu)) {
      throw ReceivablesErrors.error('receivables.invalid_amount', `creditLimit must have at most ${baseMu} decimals (it is in the base currency)`);
    }
    return baseMu;
  }

  async create(tx: TenantTx, dto: CreateCustomerDto): Promise<CustomerDto> {
    if (dto.defaultCurrency) await this.ledger.currencyUnits(tx, dto.defaultCurrency);
    const baseMu = await this.limitUnits(tx, dto.creditLimit);
    const c = toDto(await repo.createCustomer(tx.db, tx.orgId, dto), baseMu);
    await this.audit.record(tx, { action: 'receivables.customer_created', entityType: 'customer', entityId: c.id, after: c });
    return c;
  }

  /** `lock`: held until commit (an update's or archive's before is what it replaces: receivablesRepository.getCustomer). */
  async get(tx: TenantTx, id: string, o: { lock?: boolean } = {}): Promise<CustomerDto> {
    const c = await repo.getCustomer(tx.db, tx.orgId, id, o);
    if (!c) throw ReceivablesErrors.notFound('customer', id);
    return toDto(c, await this.limitUnits(tx));
  }

  /**
   * A customer named in a document: 422 (not 404) when it is not this organization's. Its row, not its answer: a
   * document reads its terms, never its credit limit's display.
   */
  async forDocument(tx: TenantTx, id: string): Promise<CustomerRow> {
    const c = await repo.getCustomer(tx.db, tx.orgId, id);
    if (!c) throw ReceivablesErrors.error('receivables.unknown_customer', `customerId: customer ${id} does not exist in this organization`);
    if (c.archivedAt) throw ReceivablesErrors.error('receivables.customer_archived', `customerId: customer ${c.name} is archived`);
    return c;
  }

  /**
   * The customer of a payment received: 422 when not this organization's. An archived one is taken: archiving stops new
   * invoices (forDocument), not the settlement of those still open, nor a payment in advance later refunded.
   */
  async forPayment(tx: TenantTx, id: string): Promise<CustomerRow> {
    const c = await repo.getCustomer(tx.db, tx.orgId, id);
    if (!c) throw ReceivablesErrors.error('receivables.unknown_customer', `customerId: customer ${id} does not exist in this organization`);
    return c;
  }

  async update(tx: TenantTx, id: string, dto: UpdateCustomerDto): Promise<CustomerDto> {
    const before = await this.get(tx, id, { lock: true });
    if (dto.defaultCurrency) await this.ledger.currencyUnits(tx, dto.defaultCurrency);
    const baseMu = await this.limitUnits(tx, dto.creditLimit);
    const after = toDto((await repo.updateCustomer(tx.db, tx.orgId, id, dto))!, baseMu);
    await this.audit.record(tx, { action: 'receivables.customer_updated', entityType: 'customer', entityId: id, before, after });
    return after;
  }

  /** Customers are archived, never deleted (their documents keep pointing at them); their open invoices can still be paid (forPayment). */
  async archive(tx: TenantTx, id: string): Promise<CustomerDto> {
    const before = await this.get(tx, id, { lock: true });
    const after = toDto((await repo.archiveCustomer(tx.db, tx.orgId, id))!, await this.limitUnits(tx));
    await this.audit.record(tx, { action: 'receivables.customer_archived', entityType: 'customer', entityId: id, before, after });
    return after;
  }

  async list(tx: TenantTx, q: CustomerQuery): Promise<CustomerPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { n: 'text', i: 'uuid' });
    const rows = await repo.listCustomers(tx.db, tx.orgId, { search: q.search, includeArchived: q.includeArchived === 'true', after, limit });
    const p = page(rows, limit, (r) => r.key);
    const baseMu = await this.limitUnits(tx);
    return { items: p.items.map((r) => toDto(r.customer, baseMu)), nextCursor: p.nextCursor };
  }
}
