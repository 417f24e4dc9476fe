import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { AuditService } from '../audit/audit.service.js';
import { LedgerService } from '../ledger/ledger.service.js';
import { ReceivablesErrors } from './receivables.errors.js';
import { receivablesRepository as repo, type CustomerRow } from './receivables.repository.js';
import type { CreateCustomerDto, CustomerDto, CustomerPage, CustomerQuery, ReceivablesSettingsDto, SetReceivablesSettingsDto, UpdateCustomerDto } from './receivables.dto.js';
import { D } from '../ledger/money.js';

const toDto = (c: CustomerRow): CustomerDto => ({ ...c, creditLimit: c.creditLimit === null ? null : D(c.creditLimit).toFixed(2) });

/** Receivables settings and customers (parties). */
@Injectable()
export class CustomersService {
  constructor(
    private readonly audit: AuditService,
    private readonly ledger: LedgerService,
  ) {}

  async settings(tx: TenantTx): Promise<ReceivablesSettingsDto> {
    const s = await repo.settings(tx.db, tx.orgId);
    if (!s) throw ReceivablesErrors.error('receivables.settings_missing', 'the receivables settings are not set: PUT /receivables/settings with the AR control account first');
    return s;
  }

  async setSettings(tx: TenantTx, dto: SetReceivablesSettingsDto): Promise<ReceivablesSettingsDto> {
    const before = (await repo.settings(tx.db, tx.orgId)) ?? null;
    await this.postableAccount(tx, dto.arAccountId, 'arAccountId');
    if (dto.deferredRevenueAccountId) await this.postableAccount(tx, dto.deferredRevenueAccountId, 'deferredRevenueAccountId');
    await repo.setSettings(tx.db, tx.orgId, dto.arAccountId, dto.deferredRevenueAccountId ?? null);
    const after = await this.settings(tx);
    await this.audit.record(tx, { action: 'receivables.settings_updated', entityType: 'receivables_settings', entityId: tx.orgId, before, after });
    return after;
  }

  /** An account of this organization that can take postings; a 422 naming the field otherwise. */
  async postableAccount(tx: TenantTx, id: string, field: string) {
    const a = await this.ledger.getAccount(tx, id).catch((err) => {
      if (err instanceof AppError && err.status === 404) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${id} does not exist in this organization`);
      throw err;
    });
    if (a.isGroup) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${a.code} is a group account; use one of its children`);
    if (a.archivedAt) throw ReceivablesErrors.error('receivables.account_not_postable', `${field}: account ${a.code} is archived`);
    return a;
  }

  async create(tx: TenantTx, dto: CreateCustomerDto): Promise<CustomerDto> {
    if (dto.defaultCurrency) await this.ledger.currencyUnits(tx, dto.defaultCurrency);
    const c = toDto(await repo.createCustomer(tx.db, tx.orgId, dto));
    await this.audit.record(tx, { action: 'receivables.customer_created', entityType: 'customer', entityId: c.id, after: c });
    return c;
  }

  async get(tx: TenantTx, id: string): Promise<CustomerDto> {
    const c = await repo.getCustomer(tx.db, tx.orgId, id);
    if (!c) throw ReceivablesErrors.notFound('customer', id);
    return toDto(c);
  }

  /** A customer named in a document: 422 (not 404) when it is not this organization's. */
  async forDocument(tx: TenantTx, id: string): Promise<CustomerDto> {
    const c = await repo.getCustomer(tx.db, tx.orgId, id);
    if (!c) throw ReceivablesErrors.error('receivables.unknown_customer', `customerId: customer ${id} does not exist in this organization`);
    if (c.archivedAt) throw ReceivablesErrors.error('receivables.customer_archived', `customerId: customer ${c.name} is archived`);
    return toDto(c);
  }

  async update(tx: TenantTx, id: string, dto: UpdateCustomerDto): Promise<CustomerDto> {
    const before = await this.get(tx, id);
    if (dto.defaultCurrency) await this.ledger.currencyUnits(tx, dto.defaultCurrency);
    const after = toDto((await repo.updateCustomer(tx.db, tx.orgId, id, dto))!);
    await this.audit.record(tx, { action: 'receivables.customer_updated', entityType: 'customer', entityId: id, before, after });
    return after;
  }

  /** Customers are archived, never deleted (their documents keep pointing at them). */
  async archive(tx: TenantTx, id: string): Promise<CustomerDto> {
    const before = await this.get(tx, id);
    const after = toDto((await repo.archiveCustomer(tx.db, tx.orgId, id))!);
    await this.audit.record(tx, { action: 'receivables.customer_archived', entityType: 'customer', entityId: id, before, after });
    return after;
  }

  async list(tx: TenantTx, q: CustomerQuery): Promise<CustomerPage> {
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { n: 'text', i: 'uuid' });
    const rows = await repo.listCustomers(tx.db, tx.orgId, { search: q.search, includeArchived: q.includeArchived === 'true', after, limit });
    const p = page(rows, limit, (r) => ({ n: r.name.toLowerCase(), i: r.id }));
    return { items: p.items.map(toDto), nextCursor: p.nextCursor };
  }
}
