import { Inject, Injectable } from '@nestjs/common';
import type { Decimal } from 'decimal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { locks, lockId } from '../../platform/database/locks.js';
import { AppError } from '../../platform/errors/app-error.js';
import { actorOf } from '../../platform/auth/principal.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { checkClientRate, type RateOverride } from './client-rate.js';
import { LedgerErrors, POSTING_ERRORS } from './ledger.errors.js';
import { Metrics } from '../../platform/observability/metrics.js';
import { mapDatabaseError, sqlState } from '../../platform/errors/database-errors.js';
import { addDays } from '../../platform/http/calendar-date.js';
import { requestHash } from '../../platform/http/idempotency-key.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { ENTITLEMENT_GATE, type EntitlementGate } from '../../platform/http/tenant.js';
import { emitEvent, emitEventAtCommit } from '../../platform/events/events.js';
import { AuditService } from '../audit/audit.service.js';
import { AnalyticsService } from '../analytics/analytics.service.js';
import { FX_REALIZED_SHARE_REF, FX_SETTLED_SHARE_REF, ledgerRepository as repo, type PostingAudit, type Totals } from './ledger.repository.js';
import { ControlAccounts, type ControlAccount } from './control-accounts.js';
import { JournalEntryOwners } from './entry-owners.js';
import { RevaluedSubledgers, type Subledger } from './revalued-items.js';
import { LedgerService } from './ledger.service.js';
import { baseShare, D, fixed, formatEntry, rateText } from './money.js';
import { generatedMemo } from './generated-memo.js';
import type {
  BatchItemDto, BatchResultDto, CreateJournalEntryDto, JournalEntryDto, JournalEntryPage, JournalEntryQuery, JournalLineInputDto, LedgerSettingsDto,
  ReverseEntryDto, RevaluationLineDto, RevaluationResultDto, TaxCodeDto, YearEndResultDto, YearReopenResultDto,
} from './ledger.dto.js';

/** What finance.post_journal_entry takes (amounts as decimal strings). */
export interface PostingLine {
  accountId: string;
  debit?: string;
  credit?: string;
  currency?: string;
  rate?: string;
  baseDebit?: string;
  baseCredit?: string;
  description?: string;
  workspaceId?: string;
  counterpartyType?: string;
  counterpartyId?: string;
  taxCodeId?: string;
  taxRole?: 'output_base' | 'output_tax' | 'input_base' | 'input_tax';
}
export interface PostingPayload {
  date: string;
  memo?: string;
  source?: string;
  sourceRef?: string;
  idempotencyKey?: string;
  /** what a replay of the key compares (requestHashOf); absent: the posting function hashes the payload */
  requestHash?: string;
  reversesEntryId?: string;
  lines: PostingLine[];
}

/** Tax codes, account types and settings read once while the payloads of a request (or a batch) are built. */
/**
 * What of an account's foreign tax lines (`tax`: their sums) is still in its foreign balance `total`, and its share of
 * their base value: a payment of the tax in its currency settles them first (what it settled is valued as the rest of
 * the balance, so its rate difference is realized once); none when the balance is on the other side or nil.
 */
function unsettledTax(total: Decimal, tax: Totals | undefined, baseMu: number): { amount: Decimal; base: Decimal } {
  const amount = tax ? D(tax.debit).minus(tax.credit) : D(0);
  if (amount.isZero() || total.isZero() || amount.isNegative() !== total.isNegative()) return { amount: D(0), base: D(0) };
  const kept = amount.abs().lte(total.abs()) ? amount : total;
  return { amount: kept, base: D(fixed(D(tax!.base_debit).minus(tax!.base_credit).times(kept).div(amount), baseMu)) };
}

class PayloadContext {
  settings?: LedgerSettingsDto;
  /** the organization's plan allows foreign-currency entries (checked once) */
  fullAccounting?: boolean;
  /** undefined: no tax code of the organization has the id */
  readonly taxCodes = new Map<string, TaxCodeDto | undefined>();
  /** account id (lower case) -> type (undefined: no account of the organization), read for the taxed lines that leave their flow to the account */
  readonly accountTypes = new Map<string, string | undefined>();
  /** the modules' control accounts by id (lower case), read under the posting lock held shared (refuseControlAccounts) */
  controlAccounts?: Map<string, ControlAccount & { module: string }>;
  /** the payloads whose tax lines moved to the base currency (taxInBaseCurrency): not what a key posted before requestHash hashed */
  readonly taxMoved = new WeakSet<PostingPayload>();
  /** the first day of the organization's first fiscal year (null: none), read for an opening-balance entry */
  booksStart?: string | null;
  /** the client's rates out of range each entry posts at with rateOverride (checkClientRate), for its audit row */
  readonly rateOverrides = new WeakMap<CreateJournalEntryDto, ({ line: number } & RateOverride)[]>();
}

/** An entry the service refuses before the posting function sees it; `key`: the refusal comes after the key's replay. */
interface Refusal {
  error: AppError;
  key?: string;
  requestHash?: string;
  /** the request refused, for the legacy hash of its payload (`replays`) */
  dto?: CreateJournalEntryDto;
}

/**
 * What a replay of an idempotency key compares: the client's request as sent, without the key (a header or body key
 * alike), not the payload the service builds from it, which a tax code's changed account, an archived tax code or a plan
 * change would alter: the retry of an entry posted before them is its replay. Another request with the key is a 409.
 */
function requestHashOf(dto: CreateJournalEntryDto): string {
  const { idempotencyKey: _key, ...request } = dto;
  return requestHash(request);
}


/** What an entry posted before requestHash (migration 20270206001100) stored: md5 of its payload as jsonb text, without the key. */
const LEGACY_HASH = /^[0-9a-f]{32}$/;

const idempotencyConflict = (key: string) => LedgerErrors.error('ledger.idempotency_conflict', `idempotency key "${key}" was already used for a different entry`);

/**
 * Idempotency keys of the entries the API posts itself: a reversal (`reversal:<entry>`, also an invoice's void), a
 * year-end close (`year-end:<year>`), and those receivables and payables post with through `post` (`invoice:<id>`,
 * `bill:<id>`, `expense_claim:<id>`, `revenue-recognition:<date>:<n>`). A client's entry taking one of them first would
 * make that posting a 409 for good (a reversal, a void, a reopen blocked): refused. A module posting with a new
 * kind of key adds its prefix here.
 */
export const RESERVED_KEY_PREFIXES = ['reversal:', 'year-end:', 'invoice:', 'bill:', 'expense_claim:', 'revenue-recognition:'] as const;

/** The most lines finance.check_entry takes (a rounding line may come on top). */
const MAX_POSTED_LINES = 499;

/**
 * The lines of an entry the API builds itself (the year-end close, a revaluation) in as few parts as the posting
 * function takes (`size` each at most), as even as can be: no part is left with a single line.
 */
function parts<T>(items: T[], size: number): T[][] {
  if (items.length <= size) return [items];
  const each = Math.ceil(items.length / Math.ceil(items.length / size));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += each) out.push(items.slice(i, i + each));
  return out;
}

/** An entry's memo with the part it is when the API posted it in several (`Year-end close ... (part 2 of 3)`). */
const partMemo = (memo: string, index: number, count: number) => (count > 1 ? `${memo} (part ${index + 1} of ${count})` : memo);

/** What a revaluation changes of one open item of a subledger (finance.fx_revaluation_items). */
interface ItemChange {
  subledger: Subledger;
  documentId: string;
  delta: Decimal;
  /** the rate it is carried at after the revaluation, and before it (its reversal's) */
  rate: string;
  carriedRate: string;
  /** the unrealized FX account its pair of lines moves against (its control account and currency's, set when the pair is made) */
  fxAccountId?: string;
}

/** What JournalService.changeCarried changes of one open item: its control account, currency and rate, and `delta` as its aging shows it. */
interface CarriedChange {
  documentId: string;
  accountId: string;
  currency: string;
  rate: string;
  delta: Decimal;
  /** the unrealized FX account named (a compensation: the one its reversal posted to; a void: its revaluations'); else the one a revaluation making this change would use */
  fxAccountId?: string;
  /** taking the item's revaluations back (a void): the account they used */
  undoing?: boolean;
  /** its lines' description (else the entry's memo) */
  description?: string;
}

/** A share settled (or given back) between a revaluation and its reversal dated `on`, on one unrealized FX account: JournalService.realizeSettledShares. */
interface SettledShare {
  documentId: string;
  on: string;
  /** its revaluation result on that account: how much (what its reversal's date's compensation moved there), a gain or a loss, and the account */
  amount: Decimal;
  kind: 'gain' | 'loss';
  unrealized: string;
  givenBack: boolean;
}

/**
 * What the FX revaluation rows dated after a settlement of an item changed of the settled share (had it stayed open), on
 * one unrealized FX account (JournalService.shareChangesSince): `part`, as the item's aging shows it; `realizedOn`, the
 * date of a revaluation's reversal whose part of the share the settlement compensated and realized (it was dated in the
 * reversal's window: settlePendingReversals), else absent.
 */
export interface ShareChange {
  fxAccountId: string;
  part: Decimal;
  realizedOn?: string;
  /**
   * the revaluation's reversal posted ahead, dated after the settlement's reversal (`on`, leaving the item carried at
   * `rate`): it takes the revaluation off only what was open then, so the part is taken back off on that date too
   * (restoreShare), as the reversal would have taken it off had the share been open
   */
  reversedOn?: { on: string; rate: string };
}

/**
 * One side of an allocation its reversal gives back (JournalService.giveBackAllocation), signed as the item's aging shows
 * it (a payment's credit negative): the document, its own rate and, when revalued by the reversal's date, its last
 * revaluation's rate (what it is carried at); what is open of it without the share; the share (`amount`), what the
 * allocation took off for it, and its value now, at what the item carries as of the reversal.
 */
export interface AllocationSide {
  documentId: string;
  ownRate: string;
  revaluedRate?: string;
  open: Decimal;
  amount: Decimal;
  takenOff: Decimal;
  now: Decimal;
}

/** An open item whose revaluation rows JournalService.carriedPerFxAccount reads. */
interface RevaluedItem {
  documentId: string;
  accountId: string;
  currency: string;
  counterpartyId: string;
  /**
   * what is open of it as of the date read (as its aging shows it) and its own rate: a row written while more of it was
   * open counts for the part still open. Absent (an item leaving the subledger, never settled): every row counts whole.
   * `exact`: every share settled since its first revaluation wrote what it took off each account (credit notes' rows):
   * every row counts whole, their sum per account is what the open part carries there.
   */
  open?: { amount: string; ownRate: string; exact?: boolean };
}

/** What an item's revaluation rows moved it on one unrealized FX account: `booked`, their sum; `carried`, what its open part carries of it. */
interface FxAccountAmount {
  booked: Decimal;
  carried: Decimal;
}

/**
 * `amounts` (per unrealized FX account) in the base currency's minor units, summing to exactly `total`: what rounding
 * leaves goes to the largest; none: all of `total` on '' (the settings' account of its kind).
 */
function partsOf(amounts: Map<string, Decimal>, total: Decimal, baseMu: number): Map<string, Decimal> {
  const out = new Map([...amounts].map(([id, a]) => [id, D(fixed(a, baseMu))]));
  const left = total.minus([...out.values()].reduce((sum, a) => sum.plus(a), D(0)));
  if (!left.isZero()) {
    const [largest] = [...amounts].sort(([, a], [, b]) => b.abs().comparedTo(a.abs()))[0] ?? [''];
    out.set(largest, (out.get(largest) ?? D(0)).plus(left));
  }
  return out;
}

/** The entries JournalService.settlePendingReversals posted: the compensations (dated the reversals' dates), and the realizations (the settlement's). */
export interface SettledReversals {
  compensationEntryIds: string[];
  realizationEntryIds: string[];
}

/** No entries posted (nothing pending, or no foreign-currency document). */
export const noSettledReversals = (): SettledReversals => ({ compensationEntryIds: [], realizationEntryIds: [] });

/** What a settlement's audit row adds about the entries settlePendingReversals posted for it: their ids, each kind when any. */
export const settledReversalsAudit = (r: SettledReversals): { compensationEntryIds?: string[]; realizationEntryIds?: string[] } => ({
  ...(r.compensationEntryIds.length ? { compensationEntryIds: r.compensationEntryIds } : {}),
  ...(r.realizationEntryIds.length ? { realizationEntryIds: r.realizationEntryIds } : {}),
});

/** Revaluation posts to the unrealized FX accounts, or to the (realized) FX accounts when those are not set. */
export function unrealizedFxAccounts(s: LedgerSettingsDto): { gain: string | null; loss: string | null } {
  return { gain: s.fxUnrealizedGainAccountId ?? s.fxGainAccountId, loss: s.fxUnrealizedLossAccountId ?? s.fxLossAccountId };
}

/** The `journal_entry.posted` payload (ledger.events.ts): what the posting said, without its lines. */
function postedEvent(entryId: string, p: PostingPayload): Record<string, unknown> {
  return {
    entryId, date: p.date, source: p.source ?? 'manual',
    ...(p.memo ? { memo: p.memo } : {}), ...(p.sourceRef ? { sourceRef: p.sourceRef } : {}), ...(p.reversesEntryId ? { reversesEntryId: p.reversesEntryId } : {}),
  };
}

/**
 * Journal entries: the one posting path (receivables and payables post through `post`), reversals,
 * FX revaluation and the year-end close.
 */
/** The unique index of one reversal an entry (finance.journal_entries (org_id, reverses_entry_id)). */
const REVERSALS_INDEX = 'journal_entries_reverses_idx';

@Injectable()
export class JournalService {
  constructor(
    private readonly audit: AuditService,
    private readonly analytics: AnalyticsService,
    private readonly ledger: LedgerService,
    @Inject(ENTITLEMENT_GATE) private readonly entitlements: EntitlementGate,
    private readonly metrics: Metrics,
    private readonly owners: JournalEntryOwners,
    private readonly controls: ControlAccounts,
    private readonly revalued: RevaluedSubledgers,
  ) {
    // a rejected posting answers with one of these codes; the metrics count it by reason
    metrics.countAsRejectedPostings(POSTING_ERRORS);
  }

  /**
   * Posts through finance.post_journal_entry, which also writes the posting's audit row (`action`): the
   * entry's identity and totals, not its lines (posted entries never change; the journal is their record).
   * `replayed` when the idempotency key was seen with the same payload (no new audit row).
   */
  async post(tx: TenantTx, payload: PostingPayload, action: PostingAudit['action'] = 'ledger.entry_posted'): Promise<{ entry: JournalEntryDto; replayed: boolean }> {
    // a document's tax in a foreign currency (invoices, credit notes, bills, expense claims) posts in the base currency;
    // a reversal mirrors its entry as posted (an entry posted before tax lines were in the base currency included)
    if (!payload.reversesEntryId) payload = await this.taxInBaseCurrency(tx, payload);
    const { entry, replayed } = await repo.post(tx.db, payload, { action, requestId: tx.meta.requestId, ip: tx.meta.ip });
    // the analytics row and the event leave with COMMIT: no round trip of their own while the posting holds its
    // balance rows' locks
    if (!replayed) {
      this.analytics.record(tx, { name: 'ledger.entry_posted', properties: { source: payload.source ?? null, action } });
      emitEventAtCommit(tx, 'journal_entry.posted', postedEvent(entry.id, payload));
    }
    return { entry: formatEntry(entry, await this.ledger.minorUnits(tx)), replayed };
  }

  async create(tx: TenantTx, dto: CreateJournalEntryDto, headerKey?: string): Promise<{ entry: JournalEntryDto; replayed: boolean }> {
    if (dto.idempotencyKey && headerKey && dto.idempotencyKey !== headerKey) {
      throw LedgerErrors.error('ledger.idempotency_key', 'the Idempotency-Key header and idempotencyKey differ');
    }
    const context = new PayloadContext();
    const built = await this.build(tx, dto, context, dto.idempotencyKey ?? headerKey);
    if (!('error' in built)) {
      const posted = await this.post(tx, built);
      if (!posted.replayed) await this.auditRateOverrides(tx, context, [[dto, posted.entry.id]]);
      return posted;
    }
    const [answer] = await this.replays(tx, [built], context);
    if ('error' in answer) throw answer.error;
    return { entry: await this.get(tx, answer.id), replayed: true };
  }

  /**
   * Posts up to 1,000 entries through one call of finance.post_journal_entries (the single-entry function per
   * entry: same rules, locks and audit rows). All or nothing: the rejected entry with the lowest index fails the
   * request with its own code, `details.index` naming it. Independent: rejected entries are reported by index with
   * their codes; `rejected` holds those the controller's validation refused (their places in `entries` are empty).
   */
  async createBatch(tx: TenantTx, entries: (CreateJournalEntryDto | undefined)[], mode: 'all_or_nothing' | 'independent', rejected: BatchItemDto[] = []): Promise<BatchResultDto> {
    const independent = mode === 'independent';
    const context = new PayloadContext();
    const results: BatchItemDto[] = [...rejected];
    const payloads: PostingPayload[] = [];
    const indexOf: number[] = [];
    const refused: (Refusal & { index: number })[] = [];
    await this.readAccountTypes(tx, entries, context);
    for (const [index, dto] of entries.entries()) {
      if (!dto) continue;
      const built = await this.build(tx, dto, context, dto.idempotencyKey);
      if ('error' in built) {
        refused.push({ ...built, index });
      } else {
        payloads.push(built);
        indexOf.push(index);
      }
    }
    // a refused entry whose key was posted with the same request is its replay (one read for all of them)
    let failure: { index: number; error: AppError } | undefined;
    for (const [i, answer] of (await this.replays(tx, refused, context)).entries()) {
      const index = refused[i].index;
      if (!('error' in answer)) {
        results.push({ index, status: 'replayed', id: answer.id });
      } else if (independent) {
        results.push({ index, status: 'rejected', error: { code: answer.error.code, message: answer.error.message } });
      } else {
        failure ??= { index, error: answer.error };
      }
    }
    if (failure) {
      // the database's rules come before the service's refusal for the entries before it: the lowest index is reported
      const before = indexOf.filter((index) => index < failure.index).length;
      if (before) await this.postBatch(tx, payloads.slice(0, before), indexOf, false);
      throw new AppError(failure.error.status, failure.error.code, `entries[${failure.index}]: ${failure.error.message}`, { index: failure.index });
    }
    // the posted entries' journal_entry.posted events are written by the same statement
    if (payloads.length) {
      const posted = await this.postBatch(tx, payloads, indexOf, independent);
      results.push(...posted);
      await this.auditRateOverrides(tx, context, posted.flatMap((r) => (r.status === 'posted' && r.id ? [[entries[r.index]!, r.id] as [CreateJournalEntryDto, string]] : [])));
    }
    // rejected entries of an independent batch do not fail the request: counted here
    for (const r of results) if (r.status === 'rejected' && r.error) this.metrics.postingsRejected.inc({ reason: r.error.code });
    results.sort((a, b) => a.index - b.index);
    const count = (status: string) => results.filter((r) => r.status === status).length;
    return { mode, posted: count('posted'), replayed: count('replayed'), rejected: count('rejected'), results };
  }

  /**
   * A client's rate of a line in another currency than the base is checked against the rate table's of the entry date, as a
   * payment's (checkClientRate); with rateOverride the lines posted at a rate out of range are kept for the audit row.
   */
  private async checkClientRates(tx: TenantTx, dto: CreateJournalEntryDto, context: PayloadContext): Promise<void> {
    if (!dto.lines.some((l) => l.rate !== undefined && l.currency !== undefined)) return;
    context.settings ??= await this.ledger.settings(tx);
    const overrides: ({ line: number } & RateOverride)[] = [];
    for (const [i, l] of dto.lines.entries()) {
      if (l.rate === undefined || l.currency === undefined || l.currency === context.settings.baseCurrency) continue;
      const figures = await checkClientRate(tx, { currency: l.currency, date: dto.date, rate: l.rate, override: dto.rateOverride, field: `lines[${i}].rate` });
      if (figures) overrides.push({ line: i, ...figures });
    }
    if (overrides.length) context.rateOverrides.set(dto, overrides);
  }

  /** The audit rows of the entries posted at a client's rate out of range (rateOverride): one per entry, after its posting's. */
  private async auditRateOverrides(tx: TenantTx, context: PayloadContext, posted: [CreateJournalEntryDto, string][]): Promise<void> {
    for (const [dto, entryId] of posted) {
      const lines = context.rateOverrides.get(dto);
      if (lines) await this.audit.record(tx, { action: 'ledger.entry_rate_override', entityType: 'journal_entry', entityId: entryId, after: { rateOverride: true, lines } });
    }
  }

  /** One call of finance.post_journal_entries; `indexOf` maps a payload's position to its entry's index in the request. */
  private async postBatch(tx: TenantTx, payloads: PostingPayload[], indexOf: number[], independent: boolean): Promise<BatchItemDto[]> {
    try {
      const rows = await repo.postBatch(tx.db, tx.orgId, payloads, { action: 'ledger.entry_posted', requestId: tx.meta.requestId, ip: tx.meta.ip }, independent);
      return rows.map((r) => ({ ...r, index: indexOf[r.index] }));
    } catch (err) {
      const mapped = mapDatabaseError(err);
      const at = /^\{"index": (\d+)\}$/.exec(sqlState(err).detail ?? '');
      if (!mapped || !at) throw err;
      const index = indexOf[Number(at[1])];
      throw new AppError(mapped.status, mapped.code, mapped.message.replace(/^entries\[\d+\]/, `entries[${index}]`), { index });
    }
  }

  /**
   * An entry's payload, or the service's refusal of it. A reserved key is refused outright; any other refusal (an
   * unknown or archived tax code, the plan, an amount) carries the key, so that the key's replay answers first
   * (`replays`), as the posting function's replay comes before its own rules.
   */
  private async build(tx: TenantTx, dto: CreateJournalEntryDto, context: PayloadContext, key?: string): Promise<PostingPayload | Refusal> {
    const reserved = key && RESERVED_KEY_PREFIXES.find((prefix) => key.startsWith(prefix));
    if (reserved) {
      return { error: LedgerErrors.error('ledger.idempotency_key_reserved', `idempotency keys starting with "${reserved}" are the ledger's own (reversals, year-end closes, documents); choose another key`) };
    }
    const requestHash = key ? requestHashOf(dto) : undefined;
    let payload: PostingPayload;
    try {
      payload = await this.payloadOf(tx, dto, context);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return { error: err, key, requestHash, dto };
    }
    // a key posted before requestHash stored the md5 of the payload with its tax in the line's currency, which the
    // posting function would compare with this payload (its tax in the base currency) and refuse as another request:
    // the key's replay is answered as for a refusal (`replays`, by the legacy hash of the request), a 409 when it differs
    if (key && context.taxMoved.has(payload)) {
      const [prior] = await repo.entriesByKey(tx.db, tx.orgId, [key]);
      if (prior && LEGACY_HASH.test(prior.requestHash)) return { error: idempotencyConflict(key), key, requestHash, dto };
    }
    return { ...payload, idempotencyKey: key, requestHash };
  }

  /**
   * The answers to refused entries: the entry first posted with the same key and request (a replay), a 409 for a key
   * posted with another request, else the refusal itself. Reads the journal once, only for refusals with a key. An entry
   * posted before requestHash matches as the posting function matches it: by the hash of the payload the request makes.
   */
  private async replays(tx: TenantTx, refused: Refusal[], context: PayloadContext): Promise<({ id: string } | { error: AppError })[]> {
    const keys = [...new Set(refused.flatMap((r) => (r.key ? [r.key] : [])))];
    const posted = new Map(keys.length ? (await repo.entriesByKey(tx.db, tx.orgId, keys)).map((e) => [e.idempotencyKey, e]) : []);
    const answers: ({ id: string } | { error: AppError })[] = [];
    for (const r of refused) {
      const prior = r.key ? posted.get(r.key) : undefined;
      if (!prior) {
        answers.push({ error: r.error });
        continue;
      }
      const same = prior.requestHash === r.requestHash
        || (LEGACY_HASH.test(prior.requestHash) && !!r.dto && prior.requestHash === await this.legacyHashOf(tx, r.dto, context));
      answers.push(same ? { id: prior.id } : { error: idempotencyConflict(r.key!) });
    }
    return answers;
  }

  /**
   * The hash finance.post_journal_entry compares with an entry posted before requestHash: md5 over the payload as jsonb
   * text without the key. The payload is built as for posting but past the refusals that leave it unchanged (an archived
   * tax code, the plan); undefined when it cannot be built.
   */
  private async legacyHashOf(tx: TenantTx, dto: CreateJournalEntryDto, context: PayloadContext): Promise<string | undefined> {
    try {
      return await repo.legacyPayloadHash(tx.db, await this.payloadOf(tx, dto, context, true));
    } catch (err) {
      if (err instanceof AppError) return undefined;
      throw err;
    }
  }

  /**
   * What the posting function takes for an entry of the API (without its key): sides checked, taxed lines split into net
   * and tax. `forReplay`: only to compare with a posted entry, so an archived tax code and the plan do not refuse it.
   */
  private async payloadOf(tx: TenantTx, dto: CreateJournalEntryDto, context: PayloadContext, forReplay = false): Promise<PostingPayload> {
    if (dto.source === 'opening_balance' && !forReplay) {
      context.booksStart ??= await this.booksStart(tx);
      this.assertOpeningBalanceDate(dto.date, context.booksStart);
      await this.refuseResultAccounts(tx, dto);
    }
    await this.readAccountTypes(tx, [dto], context);
    const lines: PostingLine[] = [];
    /** the index of the client's line each posted line comes from (a taxed line makes two) */
    const from: number[] = [];
    for (const [i, l] of dto.lines.entries()) {
      if ((l.debit === undefined) === (l.credit === undefined)) {
        throw LedgerErrors.error('ledger.line_side', `lines[${i}] needs exactly one of debit or credit`);
      }
      const { taxCodeId, taxFlow, ...line } = l;
      if (!taxCodeId) {
        if (taxFlow) throw PlatformErrors.error('validation_failed', `lines[${i}].taxFlow: only a line with a taxCodeId has a tax flow`);
        lines.push(line);
        from.push(i);
        continue;
      }
      context.settings ??= await this.ledger.settings(tx);
      if (!context.taxCodes.has(taxCodeId)) context.taxCodes.set(taxCodeId, await repo.getTaxCode(tx.db, tx.orgId, taxCodeId));
      const taxCode = context.taxCodes.get(taxCodeId);
      if (!taxCode) throw LedgerErrors.error('ledger.unknown_tax_code', `lines[${i}].taxCodeId: tax code ${taxCodeId} does not exist in this organization`);
      if (taxCode.archivedAt && !forReplay) throw LedgerErrors.error('ledger.tax_code_archived', `tax code ${taxCode.code} is archived`);
      const split = await this.withTax(tx, line, i, taxCode, context.settings.baseCurrency, taxFlow ?? this.defaultTaxFlow(line, context));
      lines.push(...split);
      from.push(...split.map(() => i));
    }
    // the posting function takes at most MAX_POSTED_LINES; a taxed line with tax counts twice, so 400 lines can be too many
    if (lines.length > MAX_POSTED_LINES) {
      throw LedgerErrors.error('ledger.invalid_entry', `lines: an entry has at most ${MAX_POSTED_LINES} lines once each taxed line is split into its net and tax lines; this one has ${lines.length}`);
    }
    if (!forReplay) await this.requireFullAccountingForForeignCurrency(tx, dto.lines, context);
    if (!forReplay) await this.refuseControlAccounts(tx, lines, from, context);
    if (!forReplay) await this.checkClientRates(tx, dto, context);
    const payload = { date: dto.date, memo: dto.memo, source: dto.source ?? 'manual', sourceRef: dto.sourceRef, lines };
    // the tax lines in the base currency here already (a batch posts without `post`); for a replay's hash the payload as
    // an entry posted before requestHash was built: its tax lines in the line's currency
    if (forReplay || !context.settings) return payload;
    const posted = await this.taxInBaseCurrency(tx, payload, context.settings);
    if (posted !== payload) context.taxMoved.add(posted);
    return posted;
  }

  /**
   * The tax lines (output_tax, input_tax) of `payload` in a foreign currency, in the base currency: VAT is owed to (or
   * reclaimed from) the tax office in the base currency, fixed at the transaction's rate, so a tax line posts its base
   * amount (its baseDebit or baseCredit when given, else its amount at its rate or the rate of the entry's date, rounded
   * as the posting function rounds) at rate 1, its foreign amount and rate kept in its description. The tax accounts
   * then hold base-currency amounts only: the VAT report (the tax lines' base amounts, as before) equals them, and an FX
   * revaluation does not move them (`revalue` leaves the foreign-currency tax lines out, for the lines posted before). A
   * tax whose base amount rounds to 0.00 keeps its line in the line's currency (base 0.00). The posting function checks
   * that an entry in one currency balances in it; an entry that was in one currency before its tax lines moved to the
   * base currency is checked here (ledger.unbalanced), so a client's entry is refused as before. Without a rate the line
   * is left as it is: the posting function refuses it.
   */
  private async taxInBaseCurrency(tx: TenantTx, payload: PostingPayload, settings?: LedgerSettingsDto): Promise<PostingPayload> {
    const foreignTax = (l: PostingLine, base?: string) => (l.taxRole === 'output_tax' || l.taxRole === 'input_tax') && !!l.currency && l.currency !== base;
    if (!payload.lines.some((l) => foreignTax(l))) return payload;
    const base = (settings ?? await this.ledger.settings(tx)).baseCurrency;
    if (!payload.lines.some((l) => foreignTax(l, base))) return payload;
    const currencies = new Set(payload.lines.map((l) => l.currency ?? base));
    if (currencies.size === 1) {
      const [currency] = currencies;
      const mu = await this.ledger.currencyUnits(tx, currency);
      const sum = (side: 'debit' | 'credit') => payload.lines.reduce((s, l) => s.plus(l[side] ?? 0), D(0));
      if (!sum('debit').eq(sum('credit'))) {
        throw LedgerErrors.error('ledger.unbalanced', `entry does not balance in ${currency}: debits ${fixed(sum('debit'), mu)} and credits ${fixed(sum('credit'), mu)}`);
      }
    }
    const baseMu = await this.ledger.currencyUnits(tx, base);
    const rates = new Map<string, string | null>();
    const lines: PostingLine[] = [];
    for (const l of payload.lines) {
      const currency = l.currency!;
      if (!foreignTax(l, base)) {
        lines.push(l);
        continue;
      }
      if (l.rate === undefined && !rates.has(currency)) rates.set(currency, await repo.effectiveRate(tx.db, currency, payload.date));
      const rate = l.rate ?? rates.get(currency);
      const side = l.debit !== undefined ? 'debit' : l.credit !== undefined ? 'credit' : undefined;
      if (!rate || !D(rate).gt(0) || !side) {
        lines.push(l);
        continue;
      }
      const given = side === 'debit' ? l.baseDebit : l.baseCredit;
      const amount = fixed(given ?? D(l[side]!).times(rate), baseMu);
      if (D(amount).isZero()) {
        // a tax whose base amount rounds to 0.00 stays as posted before (its amount in the line's currency, base 0.00):
        // without it an entry in one currency would no longer balance in it. The revaluation leaves it alone (`revalue`)
        lines.push(l);
        continue;
      }
      const note = ` (${currency} ${fixed(l[side]!, await this.ledger.currencyUnits(tx, currency))} at ${D(rate).toFixed()})`;
      const { debit: _debit, credit: _credit, rate: _rate, baseDebit: _baseDebit, baseCredit: _baseCredit, ...rest } = l;
      lines.push({ ...rest, currency: base, [side]: amount, description: `${(l.description ?? 'tax').slice(0, 500 - note.length)}${note}` });
    }
    return { ...payload, lines };
  }

  /**
   * A manual entry posts to no control account of receivables or payables (ControlAccounts): those are posted only
   * through their module's documents, so that the AR and AP aging (and the revenue schedule) equal the accounts. The
   * documents post through `post`, the revaluation and the year-end close too, and are not checked here. The settings
   * are read once per request under the posting lock held shared, as a module's posting flow reads them: a settings
   * change in flight (which drains the postings first) commits before they are read, and one starting later waits for
   * this entry. `from`: the client's line each of `lines` comes from (a taxed line's tax line too).
   */
  private async refuseControlAccounts(tx: TenantTx, lines: PostingLine[], from: number[], context: PayloadContext): Promise<void> {
    if (!context.controlAccounts) {
      // sent together: the lock's statement first, so PostgreSQL runs the reads once it holds the lock (a statement of
      // the pipeline waits for the one before it), each with its own snapshot, taken then
      const [held, controls] = await Promise.allSettled([this.ledger.holdPostings(tx), this.controls.byAccount(tx)]);
      if (held.status === 'rejected') throw held.reason;
      if (controls.status === 'rejected') throw controls.reason;
      context.controlAccounts = controls.value;
    }
    for (const [n, line] of lines.entries()) {
      const control = context.controlAccounts.get(line.accountId.toLowerCase());
      if (!control) continue;
      const { code } = await this.ledger.getAccount(tx, control.accountId);
      const where = line.taxRole?.endsWith('_tax') ? `lines[${from[n]}]: its tax posts to account ${code}, which` : `lines[${from[n]}]: account ${code}`;
      throw LedgerErrors.error('ledger.control_account', `${where} is the ${control.role} control account of ${control.module}: it is posted only through `
        + `${control.module}' ${control.postedThrough}, so that ${control.module} and the ledger agree`);
    }
  }

  /**
   * A taxed line's flow when the client gives none, from its account: revenue is a sale (output: a sales credit note
   * debits revenue and still reduces sales), an expense a purchase (input: a purchase return credits it and still reduces
   * purchases); on any other account (an asset too: equipment sold is credited, bought debited; or one the posting
   * function will refuse) a credit is output, a debit input.
   */
  private defaultTaxFlow(line: Pick<JournalLineInputDto, 'accountId' | 'debit'>, context: PayloadContext): 'output' | 'input' {
    const type = context.accountTypes.get(line.accountId.toLowerCase());
    if (type === 'revenue') return 'output';
    if (type === 'expense') return 'input';
    return line.debit !== undefined ? 'input' : 'output';
  }

  /**
   * The types defaultTaxFlow needs: of the accounts of taxed lines without a taxFlow not read yet, in one query for all
   * these entries (none when no such line).
   */
  private async readAccountTypes(tx: TenantTx, entries: (CreateJournalEntryDto | undefined)[], context: PayloadContext): Promise<void> {
    // a loop, not a chain of arrays: called for every entry of a batch, nearly always to find nothing
    const ids = new Set<string>();
    for (const e of entries) {
      for (const l of e?.lines ?? []) {
        if (!l.taxCodeId || l.taxFlow) continue;
        const id = l.accountId.toLowerCase();
        if (!context.accountTypes.has(id)) ids.add(id);
      }
    }
    if (!ids.size) return;
    const types = await repo.accountTypes(tx.db, tx.orgId, [...ids]);
    for (const id of ids) context.accountTypes.set(id, types.get(id));
  }

  /**
   * Entries in a currency other than the base currency are "full accounting" (professional and up); the
   * closing and revaluation entries the ledger posts itself are not user entries and are not gated here.
   * Checked once per request (a batch's entries share the answer).
   */
  private async requireFullAccountingForForeignCurrency(tx: TenantTx, lines: JournalLineInputDto[], context: PayloadContext): Promise<void> {
    if (context.fullAccounting || !lines.some((l) => l.currency)) return;
    context.settings ??= await this.ledger.settings(tx);
    const base = context.settings.baseCurrency;
    if (lines.some((l) => l.currency && l.currency !== base)) {
      await this.entitlements.enforce(tx, { app: 'omnizen', feature: 'full_accounting' });
      context.fullAccounting = true;
    }
  }

  /**
   * A taxed line becomes its net line plus the tax line on the same side (on the tax code's sales account for an
   * output flow, its purchase account for an input flow); both carry the tax code and their role, which the VAT report sums.
   */
  private async withTax(tx: TenantTx, line: Omit<JournalLineInputDto, 'taxCodeId' | 'taxFlow'>, index: number, t: TaxCodeDto, base: string,
    flow: 'output' | 'input'): Promise<PostingLine[]> {
    const side = line.debit !== undefined ? 'debit' : 'credit';
    // the flow decides the box and the tax account, the side only the sign
    const r = await this.ledger.taxOf(tx, t, line[side]!, line.currency ?? base, `lines[${index}]`);
    const out: PostingLine[] = [{ ...line, [side]: r.net, taxCodeId: t.id, taxRole: `${flow}_base` }];
    if (!D(r.tax).isZero()) {
      out.push({
        accountId: flow === 'output' ? t.salesAccountId : t.purchaseAccountId, [side]: r.tax, currency: line.currency, rate: line.rate,
        description: `${t.code} ${t.rate}% on ${r.net}`, workspaceId: line.workspaceId, counterpartyType: line.counterpartyType, counterpartyId: line.counterpartyId,
        taxCodeId: t.id, taxRole: `${flow}_tax`,
      });
    }
    return out;
  }

  async get(tx: TenantTx, id: string): Promise<JournalEntryDto> {
    const [e] = await this.entries(tx, [id]);
    if (!e) throw LedgerErrors.notFound('journal_entry', id);
    return e;
  }

  private async entries(tx: TenantTx, ids: string[]): Promise<JournalEntryDto[]> {
    const units = await this.ledger.minorUnits(tx);
    return (await repo.getEntries(tx.db, tx.orgId, ids)).map((e) => formatEntry(e, units));
  }

  /** Newest first; filters by date range, account, source, counterparty, amount (totalBase) and memo text. */
  async list(tx: TenantTx, q: JournalEntryQuery): Promise<JournalEntryPage> {
    if (q.from && q.to && q.from > q.to) throw LedgerErrors.error('ledger.range', 'from must not be after to');
    if (q.minAmount && q.maxAmount && D(q.minAmount).gt(q.maxAmount)) throw LedgerErrors.error('ledger.range', 'minAmount must not be above maxAmount');
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { d: 'date', s: 'integer' });
    const { limit: _limit, cursor: _cursor, ...filter } = q;
    const rows = await repo.listEntryIds(tx.db, tx.orgId, { ...filter, after, limit });
    const p = page(rows, limit, (r) => ({ d: r.entry_date, s: r.seq }));
    return { items: await this.entries(tx, p.items.map((r) => r.id)), nextCursor: p.nextCursor };
  }

  /**
   * The reversal a bookkeeper asks for (POST .../reverse): refused for an entry a document owns (JournalEntryOwners),
   * which the document's own correction reverses.
   */
  async reverseStandalone(tx: TenantTx, id: string, dto: ReverseEntryDto): Promise<{ entry: JournalEntryDto; replayed: boolean }> {
    const owner = await this.owners.ownerOf(tx, id);
    if (owner) {
      throw LedgerErrors.error('ledger.entry_of_document', `journal entry ${id} belongs to ${owner}: correct it there, so the document and the ledger stay in step`);
    }
    return this.reverse(tx, id, dto);
  }

  /** The first day of the organization's first fiscal year; null when it has none (the books are not started). */
  private async booksStart(tx: TenantTx): Promise<string | null> {
    const starts = (await this.ledger.listYears(tx)).map((y) => y.startDate).sort();
    return starts[0] ?? null;
  }

  /**
   * An opening-balance entry (source opening_balance: the balances brought from former books) is dated the first day of
   * the first fiscal year, the day the books here start: the cash-flow statement counts its cash as opening cash, which
   * is the cash before any movement only on that day. Without a fiscal year the posting function refuses the entry
   * with its own code. finance.check_entry holds the same rule for any caller.
   */
  private assertOpeningBalanceDate(date: string, booksStart: string | null): void {
    if (booksStart && date !== booksStart) {
      throw LedgerErrors.error('ledger.opening_balance_date',
        `an opening-balance entry (source opening_balance) is dated ${booksStart}, the first day of the first fiscal year, not ${date}: date it ${booksStart}, or post it with another source`,
        { booksStart });
    }
  }

  /**
   * An opening-balance entry brings balances, no result: the former years' results come in through retained earnings. A
   * revenue or expense line would be income of the first year that the cash-flow statement (which leaves the entry out)
   * never shows. finance.check_entry holds the same rule for any caller; a reversal (which mirrors its entry) is not checked.
   */
  private async refuseResultAccounts(tx: TenantTx, dto: CreateJournalEntryDto): Promise<void> {
    const types = await repo.accountTypes(tx.db, tx.orgId, [...new Set(dto.lines.map((l) => l.accountId.toLowerCase()))]);
    for (const [i, l] of dto.lines.entries()) {
      const type = types.get(l.accountId.toLowerCase());
      if (type !== 'revenue' && type !== 'expense') continue;
      const { code } = await this.ledger.getAccount(tx, l.accountId);
      throw LedgerErrors.error('ledger.opening_balance_result_account',
        `lines[${i}]: account ${code} is a ${type} account: an opening-balance entry (source opening_balance) brings balances; the former years' results come in through retained earnings`);
    }
  }

  /** The correction of a posted entry: an entry with every line's sides swapped, base amounts kept exactly. */
  async reverse(tx: TenantTx, id: string, dto: ReverseEntryDto): Promise<{ entry: JournalEntryDto; replayed: boolean }> {
    const original = await this.get(tx, id);
    if (original.reversesEntryId) throw LedgerErrors.error('ledger.reversal_of_reversal', 'a reversal cannot be reversed; post a new entry instead');
    if (original.reversedByEntryId) throw LedgerErrors.error('ledger.already_reversed', `journal entry ${id} is already reversed by ${original.reversedByEntryId}`);
    // an opening-balance entry is reversed on its own date (the day its balances came in): also once a fiscal year was
    // created before it by an earlier release, which is then the way to correct it
    if (original.source === 'opening_balance' && dto.date !== undefined && dto.date !== original.date) {
      throw LedgerErrors.error('ledger.opening_balance_date',
        `the reversal of an opening-balance entry (source opening_balance) is dated ${original.date}, the entry's own date, not ${dto.date}: leave date out or send ${original.date}`,
        { entryDate: original.date });
    }
    const opt = (v: string) => (D(v).isZero() ? undefined : v);
    try {
      return await this.post(tx, {
        date: dto.date ?? original.date, memo: dto.memo ?? generatedMemo('Reversal of ', original.memo || original.id), source: original.source,
        sourceRef: original.sourceRef ?? undefined, reversesEntryId: id, idempotencyKey: `reversal:${id}`,
        lines: original.lines.map((l) => ({
          accountId: l.accountId, currency: l.currency, rate: l.rate, debit: opt(l.credit), credit: opt(l.debit),
          baseDebit: l.baseCredit, baseCredit: l.baseDebit, description: l.description ?? undefined,
          workspaceId: l.workspaceId ?? undefined, counterpartyType: l.counterpartyType ?? undefined, counterpartyId: l.counterpartyId ?? undefined,
          // a reversed sale still counts as a sale in the VAT report, with the opposite sign
          taxCodeId: l.taxCodeId ?? undefined, taxRole: (l.taxRole ?? undefined) as PostingLine['taxRole'],
        })),
      }, 'ledger.entry_reversed');
    } catch (err) {
      // identical reversals at once can all pass the reads above and the key's check before any of them inserts: the one
      // that then loses on the index of one reversal an entry (not the key's) is told what it is, not conflict.unique
      const { code, constraint } = sqlState(err);
      if (code === '23505' && constraint === REVERSALS_INDEX) throw LedgerErrors.error('ledger.already_reversed', `journal entry ${id} is already reversed`);
      throw err;
    }
  }

  /**
   * The revaluation of the subledgers' control accounts (RevaluedSubledgers): each foreign-currency open item valued at
   * the rate of `date` and rounded on its own, as its aging row shows it; per account and currency one adjustment and
   * one pair of lines, the sum of its items' changes, so the aging (which adds the items' changes) equals the account;
   * when its items' changes cancel, still the adjustment (a difference of 0) and the items' rows, on a pair of control
   * lines that cancel. Answers the control accounts, which the balance-wise pass leaves alone.
   */
  private async revalueOpenItems(tx: TenantTx, date: string, reversalDate: string | undefined, baseMu: number, fx: { gain: string; loss: string }, adjustments: RevaluationLineDto[],
    pairs: PostingLine[][], pairItems: ItemChange[][]): Promise<Set<string>> {
    const controlled = new Set<string>();
    const rates = new Map<string, string>();
    /** `raised`: what the items whose change raises the account's debit side add to it */
    interface Group { accountId: string; currency: string; rate: string; balance: Decimal; before: Decimal; after: Decimal; raised: Decimal; items: ItemChange[] }
    const groups = new Map<string, Group>();
    for (const sub of await this.revalued.openItems(tx, date)) {
      for (const id of sub.accountIds) controlled.add(id);
      // the account's debit side: an AR item adds to it, an AP item (a credit) takes from it
      const sign = sub.side === 'debit' ? 1 : -1;
      for (const item of sub.items) {
        // its settlement after the date took off what it carried then: a change as of the date would stay on it after.
        // With autoReverse the reversal takes the change back first: only a settlement before the reversal date is in the way
        const settledOn = reversalDate ? (item.firstSettledAfter && item.firstSettledAfter < reversalDate ? item.firstSettledAfter : null) : item.settledAfter;
        if (settledOn) {
          throw LedgerErrors.error('ledger.revaluation_before_settlement',
            `the ${sub.subledger === 'receivables' ? 'receivable' : 'payable'} ${item.documentId} has a settlement dated ${settledOn}, after ${date}` + (reversalDate
              ? ` and before the reversal on ${reversalDate}: revalue as of ${settledOn} or later` : `: revalue as of ${settledOn} or later`),
            { documentId: item.documentId, settledOn });
        }
        let rate = rates.get(item.currency);
        if (!rate) {
          rate = (await repo.effectiveRate(tx.db, item.currency, date)) ?? undefined;
          if (!rate) throw LedgerErrors.error('ledger.rate_missing', `no ${item.currency} rate on or before ${date}`);
          rates.set(item.currency, rate);
        }
        const target = D(fixed(D(item.open).times(rate), baseMu));
        const key = `${item.accountId}|${item.currency}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { accountId: item.accountId, currency: item.currency, rate, balance: D(0), before: D(0), after: D(0), raised: D(0), items: [] }));
        g.balance = g.balance.plus(D(item.open).times(sign));
        g.before = g.before.plus(D(item.carried).times(sign));
        g.after = g.after.plus(target.times(sign));
        const delta = target.minus(item.carried);
        if (!delta.isZero()) g.items.push({ subledger: sub.subledger, documentId: item.documentId, delta, rate, carriedRate: item.carriedRate });
        if (delta.times(sign).gt(0)) g.raised = g.raised.plus(delta.times(sign));
      }
    }
    for (const g of [...groups.values()].sort((a, b) => a.accountId.localeCompare(b.accountId) || a.currency.localeCompare(b.currency))) {
      const diff = g.after.minus(g.before);
      // no item changed (nor the account); items that changed are written even when their changes cancel (below)
      if (!g.items.length) continue;
      const amount = fixed(diff.abs(), baseMu);
      const adjustment = {
        accountId: g.accountId, currency: g.currency, balance: fixed(g.balance, await this.ledger.currencyUnits(tx, g.currency)), rate: rateText(g.rate),
        baseBefore: fixed(g.before, baseMu), baseAfter: fixed(g.after, baseMu), difference: fixed(diff, baseMu),
      };
      adjustments.push(adjustment);
      const description = `FX revaluation of ${g.currency} ${adjustment.balance} at ${adjustment.rate}`;
      if (diff.isZero()) {
        // the items' changes cancel (an invoice raised as much as a payment credit lowered): the account keeps its base
        // value, but each item carries its new value from the date all the same (its row), so that a later settlement
        // realizes only what the rate moved since and the period's unrealized result per item is in its rows, as for any
        // revalued item. Their entry (and its reversal, autoReverse) is a pair of control lines that cancel, what the
        // raised items added debited and credited: no FX account moves; the rows name the one a net of 0 names (the
        // loss account, below), whose rows of this entry sum to 0, what it got
        const raised = fixed(g.raised, baseMu);
        pairs.push([
          { accountId: g.accountId, currency: g.currency, rate: g.rate, baseDebit: raised, description },
          { accountId: g.accountId, currency: g.currency, rate: g.rate, baseCredit: raised, description },
        ]);
      } else {
        pairs.push([
          { accountId: g.accountId, currency: g.currency, rate: g.rate, ...(diff.gt(0) ? { baseDebit: amount } : { baseCredit: amount }), description },
          diff.gt(0) ? { accountId: fx.gain, credit: amount, description } : { accountId: fx.loss, debit: amount, description },
        ]);
      }
      // each item's row names the account of its group's pair (whichever way the item itself moved)
      const fxAccountId = diff.gt(0) ? fx.gain : fx.loss;
      pairItems.push(g.items.map((item) => ({ ...item, fxAccountId })));
    }
    return controlled;
  }

  /**
   * Unrealized FX gain/loss at `date`: every asset and liability balance held in a foreign currency is
   * valued at the rate effective on `date`; the difference to its carried base value is posted
   * (through the posting path) against the FX gain or loss account. Running it again finds nothing to do.
   */
  async revalue(tx: TenantTx, date: string, autoReverse = false): Promise<RevaluationResultDto> {
    const s = await this.ledger.settings(tx);
    const { gain, loss } = unrealizedFxAccounts(s);
    if (!gain || !loss) throw LedgerErrors.error('ledger.fx_accounts_missing', 'configure fxUnrealizedGainAccountId and fxUnrealizedLossAccountId (or fxGainAccountId and fxLossAccountId) in the ledger settings first');
    // one revaluation at a time per organization: the second sees the first's result
    await locks.exclusive(tx.db, `finance.revaluation:${lockId(tx.orgId)}`);
    // the open items are read once no posting is in flight, and none starts before the revaluation commits, as the
    // close does: an allocation committing between the read and the insert of the items' changes would have settled
    // what the item carried before, and the change would then be written on what it no longer carries. Whoever reads
    // what an item carries (receivables and payables) holds this lock shared from then on (RevaluedSubledgers)
    await repo.drainPostings(tx.db, tx.orgId);
    const baseMu = await this.ledger.currencyUnits(tx, s.baseCurrency);
    const accounts = new Map((await this.ledger.listAccounts(tx, true)).map((a) => [a.id, a]));
    const totals = await repo.totals(tx.db, null, date);
    const adjustments: RevaluationLineDto[] = [];
    /** each adjustment's two lines: the account's and the gain or loss account's, which balance each other */
    const pairs: PostingLine[][] = [];
    /** each pair's open items (a subledger's control account; none for another account), kept with the entry that posts the pair */
    const pairItems: ItemChange[][] = [];
    // the reversal's date (autoReverse): the next period's first day (its period is checked below)
    let next: string | undefined;
    let periods: Awaited<ReturnType<LedgerService['listPeriods']>> = [];
    if (autoReverse) {
      periods = await this.ledger.listPeriods(tx);
      const current = periods.find((p) => p.startDate <= date && p.endDate >= date);
      next = addDays(current?.endDate ?? date, 1);
    }
    const controlled = await this.revalueOpenItems(tx, date, next, baseMu, { gain, loss }, adjustments, pairs, pairItems);
    const perItem = adjustments.length;
    // tax is owed in the base currency at the transaction's rate and is not revalued: tax lines post in the base currency
    // (taxInBaseCurrency), but one posted before in the line's currency (or the reversal of such an entry) keeps its
    // foreign amount. What of such lines is still in the balance is left out of the balance valued and keeps its base
    // value (`unsettledTax`), while the rest of the account (a bank a tax code names, an earlier revaluation of the tax
    // account, the tax paid in its currency) is valued as any balance
    const foreignTax = new Map((await repo.foreignTaxTotals(tx.db, tx.orgId, date, s.baseCurrency)).map((t) => [`${t.account_id}|${t.currency}`, t]));
    for (const t of totals.sort((a, b) => a.account_id.localeCompare(b.account_id) || a.currency.localeCompare(b.currency))) {
      const a = accounts.get(t.account_id);
      // a subledger's control account is valued per open item (above)
      if (!a || t.currency === s.baseCurrency || (a.type !== 'asset' && a.type !== 'liability') || controlled.has(a.id)) continue;
      const total = D(t.debit).minus(t.credit);
      const tax = unsettledTax(total, foreignTax.get(`${t.account_id}|${t.currency}`), baseMu);
      const balance = total.minus(tax.amount);
      const baseBefore = D(t.base_debit).minus(t.base_credit).minus(tax.base);
      const rate = await repo.effectiveRate(tx.db, t.currency, date);
      if (!rate) throw LedgerErrors.error('ledger.rate_missing', `no ${t.currency} rate on or before ${date}`);
      const baseAfter = D(fixed(balance.times(rate), baseMu));
      const diff = baseAfter.minus(baseBefore);
      if (diff.isZero()) continue;
      const amount = fixed(diff.abs(), baseMu);
      const adjustment = {
        accountId: a.id, currency: t.currency, balance: fixed(balance, await this.ledger.currencyUnits(tx, t.currency)), rate: rateText(rate),
        baseBefore: fixed(baseBefore, baseMu), baseAfter: fixed(baseAfter, baseMu), difference: fixed(diff, baseMu),
      };
      adjustments.push(adjustment);
      // the amount in the currency's minor units and the rate as stored, as in the answer's adjustments
      const description = `FX revaluation of ${t.currency} ${adjustment.balance} at ${adjustment.rate}`;
      pairs.push([
        { accountId: a.id, currency: t.currency, rate, ...(diff.gt(0) ? { baseDebit: amount } : { baseCredit: amount }), description },
        diff.gt(0) ? { accountId: gain, credit: amount, description } : { accountId: loss, debit: amount, description },
      ]);
      pairItems.push([]);
    }
    // in account and currency order, the per-item adjustments among the others
    const order = adjustments.map((a, i) => ({ a, i })).sort((x, y) => x.a.accountId.localeCompare(y.a.accountId) || x.a.currency.localeCompare(y.a.currency)).map((x) => x.i);
    if (perItem) {
      const [a, p, it] = [[...adjustments], [...pairs], [...pairItems]];
      order.forEach((from, to) => { adjustments[to] = a[from]; pairs[to] = p[from]; pairItems[to] = it[from]; });
    }
    if (!pairs.length) return { adjustments, entry: null, reversal: null, entries: [], reversals: [] };
    // an earlier revaluation whose reversal is dated after `date` (autoReverse): the balances of `date` hold its change, which
    // the reversal takes off again; a revaluation without autoReverse measured against them would leave the accounts at the
    // earlier rate's value (less its own change) from the reversal on. Refused when it would post (one that finds nothing
    // to do changes nothing): revalue with autoReverse too (both reversed on the same day), or as of the reversal date or
    // later (a revaluation with autoReverse is measured against the same balances, and its reversal takes off only its own
    // change: nothing is left)
    if (!autoReverse) {
      const [pending] = await repo.revaluationReversalsAfter(tx.db, tx.orgId, date);
      if (pending) {
        throw LedgerErrors.error('ledger.revaluation_reversal_pending',
          `the FX revaluation as of ${pending.revaluationDate} is reversed on ${pending.reversalDate}, after ${date}: a revaluation without autoReverse would be `
          + `measured against the value that reversal takes off again. Revalue as of ${date} with autoReverse, or as of ${pending.reversalDate} or later`,
          { revaluationDate: pending.revaluationDate, reversalDate: pending.reversalDate });
      }
    }
    // the next period's balances are carried at the original rates again; its own revaluation starts from them. Its
    // period is checked before anything posts: the reversal failing would roll the revaluation back with a less clear code
    if (next) {
      const current = periods.find((p) => p.startDate <= date && p.endDate >= date);
      const following = periods.find((p) => p.startDate === next);
      if (current && following?.status !== 'open') {
        throw LedgerErrors.error('ledger.no_next_period', following
          ? `the period ${following.startDate} to ${following.endDate} the reversal would be dated in is closed; reopen it or revalue without autoReverse`
          : `no fiscal period starts on ${next} for the reversal; create the next fiscal year or revalue without autoReverse`);
      }
    }
    // an entry takes MAX_POSTED_LINES: more adjustments are posted as several entries, each balanced by its own
    // adjustments (in one transaction: the revaluation posts whole or not at all)
    const split = parts(pairs, Math.floor(MAX_POSTED_LINES / 2));
    const entries: JournalEntryDto[] = [];
    for (const [i, part] of split.entries()) {
      entries.push((await this.post(tx, { date, memo: partMemo(`FX revaluation as of ${date}`, i, split.length), source: 'system', lines: part.flat() }, 'ledger.fx_revaluation_posted')).entry);
    }
    // the rate each item carries on `next` without this revaluation (read before its rows are written): the rate of its
    // last row dated by then (an earlier revaluation's reversal posted ahead for the same day included), else its own.
    // The reversal row leaves it carrying that rate, so a later settlement realizes against it
    const rateOnNext = new Map<string, string>();
    if (next && pairItems.some((p) => p.length)) {
      for (const sub of await this.revalued.openItems(tx, next)) for (const i of sub.items) rateOnNext.set(`${sub.subledger}|${i.documentId}`, i.carriedRate);
    }
    // the items carry their new values from `date` (the agings add them); a reversal's opposite from `next`, at the rate before
    const itemParts = parts(pairItems, Math.floor(MAX_POSTED_LINES / 2)).map((p) => p.flat());
    const actor = actorOf(tx.principal).actorId;
    for (const [i, entry] of entries.entries()) {
      await repo.insertRevaluationItems(tx.db, tx.orgId, itemParts[i].map((x) => ({
        entryId: entry.id, date, subledger: x.subledger, documentId: x.documentId, rate: x.rate, delta: x.delta.toFixed(), fxAccountId: x.fxAccountId!, createdBy: actor })));
    }
    const reversals: JournalEntryDto[] = [];
    if (next) {
      for (const [i, entry] of entries.entries()) {
        reversals.push((await this.reverse(tx, entry.id, { date: next, memo: partMemo(`Reversal of FX revaluation as of ${date}`, i, entries.length) })).entry);
        await repo.insertRevaluationItems(tx.db, tx.orgId, itemParts[i].map((x) => ({
          entryId: reversals[i].id, date: next, subledger: x.subledger, documentId: x.documentId, rate: rateOnNext.get(`${x.subledger}|${x.documentId}`) ?? x.carriedRate,
          delta: x.delta.neg().toFixed(), fxAccountId: x.fxAccountId!, createdBy: actor })));
      }
    }
    return { adjustments, entry: entries[0], reversal: reversals[0] ?? null, entries, reversals };
  }

  /**
   * The latest date an FX revaluation changed one of `documentIds` (open receivables or payables) in the books from that
   * date on (a revaluation, or what a void took off; not a reversal posted ahead, dated the next period's first day), or
   * undefined: a settlement, a credit or a void dated before it would take off what the item carried before the
   * revaluation, and is refused by the subledgers with their own code. One dated between a revaluation and its reversal
   * is fine: it settles what the item carries as of its date, and settlePendingReversals takes what the reversal would
   * take off the settled share back.
   */
  async lastRevaluation(tx: TenantTx, documentIds: string[]): Promise<{ documentId: string; date: string } | undefined> {
    let last: { documentId: string; date: string } | undefined;
    for (const r of await repo.lastRevaluations(tx.db, tx.orgId, documentIds)) {
      if (!last || r.date > last.date) last = r;
    }
    return last;
  }

  /**
   * After a settlement (an allocation, a refund, a credit note, a void, or the reversal of one) dated `date` of open items
   * of a subledger: the revaluation rows already posted for a later date (an autoReverse reversal, dated the next period's
   * first day) take off what the revaluation added to the whole item, though the settlement took (or gave back) some of it.
   * On each such date the item is brought to what it carries then at the rate of that date's rows (its open amount at the
   * reversal's rate: what it carried before the revaluation), by rows of the difference and their lines against the
   * unrealized FX accounts (Dr control / Cr unrealized gain when it raises the item's base on AR; the mirror on AP).
   * So on every date the aging equals the control account, and an item settled in the window realizes over its life the
   * settlement's rate against its own. An item `leaving` the subledger (voided as of `date`, before its row is marked so)
   * is brought to 0 on each such date: its control account, currency and rate are given. One compensation entry per such
   * date for all the documents (in parts when its lines are more than a posting takes), each item's row linked to the
   * entry (part) that moved it.
   *
   * Per unrealized FX account the item's rows moved it on (carriedPerFxAccount, whatever the settings say by now), a row
   * and a pair of lines each: a settled share's compensation puts back on each account what that date's rows took off the
   * part no longer open (the last share: all they took), a leaving item's takes each account's own amount back, so no
   * account keeps any of a settled or voided item and none holds the opposite.
   *
   * `realize` (a payment, an allocation or a refund: 'settled'; the reversal of an allocation: 'givenBack'; not a credit
   * note, which cancels the item at what it carries, nor a void): each account's part of the settled shares' compensation
   * is moved to the realized FX account of its kind (a gain to the gain account, a loss to the loss account) on the
   * settlement's date (one entry for all the documents, in parts likewise, marked FX_REALIZED_SHARE_REF), so that the
   * settlement's period ends with an unrealized result only on what is still open; a share given back moves back.
   * `fxAccountsMissing`: the subledger's error when an amount moves to a realized FX account the settings lack.
   *
   * One query for the pending dates of all the documents (pass only foreign-currency ones: a base-currency document is
   * never revalued), then per such date one read of their rows; the settings are read only when a compensation is due.
   * Answers the entries posted: the compensations and the realizations.
   */
  async settlePendingReversals(tx: TenantTx, settlement: {
    subledger: Subledger; date: string; memo: string; counterpartyType: string; counterpartyId: string;
    documents: { documentId: string; leaving?: { accountId: string; currency: string; rate: string } }[];
    realize?: 'settled' | 'givenBack'; fxAccountsMissing?: (message: string) => Error;
  }): Promise<SettledReversals> {
    const { documents, realize, fxAccountsMissing, ...item } = settlement;
    if (!documents.length) return noSettledReversals();
    const pending = await repo.revaluationDatesAfter(tx.db, tx.orgId, [...new Set(documents.map((d) => d.documentId))], item.date);
    if (!pending.length) return noSettledReversals();
    const s = await this.ledger.settings(tx);
    const context = { settings: s, baseMu: await this.ledger.currencyUnits(tx, s.baseCurrency) };
    const leaving = new Map(documents.flatMap((d) => (d.leaving ? [[d.documentId, d.leaving] as const] : [])));
    const entries: string[] = [];
    /** the settled shares' parts whose revaluation result moves to the realized FX account (or back) on the settlement's date */
    const shares: SettledShare[] = [];
    for (const on of [...new Set(pending.map((p) => p.date))]) {
      const due = pending.filter((p) => p.date === on);
      const leavingIds = due.filter((p) => leaving.has(p.documentId)).map((p) => p.documentId);
      const settledIds = due.filter((p) => !leaving.has(p.documentId)).map((p) => p.documentId);
      // the settled items as open items then; what the leaving items carry on that date, and the settled ones' rows of that date (per account)
      const open = settledIds.length ? await this.revalued.openItemsOf(tx, item.subledger, on, settledIds) : [];
      const carried = leavingIds.length ? await this.carriedPerFxAccount(tx, item.subledger,
        leavingIds.map((id) => ({ ...leaving.get(id)!, documentId: id, counterpartyId: item.counterpartyId })), on, context.baseMu) : new Map<string, Map<string, FxAccountAmount>>();
      const onDate = open.length ? await this.carriedPerFxAccount(tx, item.subledger, open.map((o) => ({
        documentId: o.documentId, accountId: o.accountId, currency: o.currency, counterpartyId: item.counterpartyId, open: { amount: o.open, ownRate: o.ownRate } })), on, context.baseMu, on)
        : new Map<string, Map<string, FxAccountAmount>>();
      const takenBack = generatedMemo('', item.memo, `: FX revaluation reversal of ${on} taken back`);
      const onSettledShare = generatedMemo('', item.memo, `: FX revaluation reversal of ${on} on the settled share`);
      const changes: CarriedChange[] = [];
      for (const p of due) {
        const gone = leaving.get(p.documentId);
        if (gone) {
          // each account's own amount taken back off it; rows of no account found: the settings' account of the change's kind
          for (const [fxAccountId, { carried: net }] of carried.get(p.documentId) ?? []) {
            if (!net.isZero()) changes.push({ ...gone, documentId: p.documentId, delta: net.neg(), fxAccountId: fxAccountId || undefined, description: takenBack });
          }
          continue;
        }
        const o = open.find((i) => i.documentId === p.documentId);
        if (!o) continue;
        const target = D(fixed(D(o.open).times(o.carriedRate), context.baseMu));
        const delta = target.minus(o.carried);
        if (delta.isZero()) continue;
        // per account, what the date's rows took off the part no longer open, put back (or, given back, taken off again)
        const rows = new Map([...onDate.get(p.documentId) ?? []].map(([id, a]) => [id, a.carried.minus(a.booked)]));
        for (const [fxAccount, part] of partsOf(rows, delta, context.baseMu)) {
          if (part.isZero()) continue;
          // the part's own revaluation result: a gain or a loss by its sign
          const kind = this.resultKind(item.subledger, realize === 'givenBack' ? part.neg() : part);
          const fxAccountId = fxAccount || (unrealizedFxAccounts(s)[kind] ?? undefined);
          changes.push({ documentId: p.documentId, accountId: o.accountId, currency: o.currency, rate: o.carriedRate, delta: part, fxAccountId, description: onSettledShare });
          if (realize && fxAccountId) shares.push({ documentId: p.documentId, on, amount: part.abs(), kind, unrealized: fxAccountId, givenBack: realize === 'givenBack' });
        }
      }
      if (!changes.length) continue;
      const memo = changes.some((c) => !leaving.has(c.documentId)) ? onSettledShare : takenBack;
      entries.push(...await this.compensation(tx, on, () => this.changeCarried(tx, { ...item, date: on, memo, sourceRef: FX_SETTLED_SHARE_REF, items: changes }, context)));
    }
    const realizationEntryIds = shares.length ? await this.realizeSettledShares(tx, { ...item, shares, fxAccountsMissing }, context) : [];
    return { compensationEntryIds: entries, realizationEntryIds };
  }

  /**
   * The compensation of a reversal posted ahead, dated `on`: a closed period there is the settlement's refusal, said so
   * (the settlement's own date is in an open period; what falls in the closed one is this entry).
   */
  private async compensation<T>(tx: TenantTx, on: string, post: () => Promise<T>): Promise<T> {
    try {
      return await post();
    } catch (err) {
      const mapped = err instanceof AppError ? err : mapDatabaseError(err);
      if (mapped?.code !== 'ledger.period_closed') throw err;
      throw LedgerErrors.error('ledger.period_closed', `the settlement's compensation of the FX revaluation reversal dated ${on} falls in a closed period `
        + `(${mapped.message}): the reversal took the revaluation off the whole item on ${on}, and the settled share's part must be put back on that date; `
        + 'reopen that period, or date the settlement on or after the reversal', { compensationDate: on });
    }
  }

  /**
   * A settlement between a revaluation and its reversal: each settled share's revaluation result on each unrealized FX
   * account (what its reversal's date `on` compensation moved there) moves from that account to the realized FX account
   * of its kind (a gain to the gain account, a loss to the loss account) on the settlement's date, or
   * back when the share was given back. Nothing for a share whose unrealized account is that realized one (the settings'
   * fallback); a realized account the settings lack is refused only for an amount that moves. One entry for all the
   * shares, a pair of lines each, in parts when they are more than a posting takes. Answers the entries.
   */
  private async realizeSettledShares(tx: TenantTx, x: { date: string; memo: string; shares: SettledShare[]; fxAccountsMissing?: (message: string) => Error },
    context: { settings: LedgerSettingsDto; baseMu: number }): Promise<string[]> {
    const s = context.settings;
    const pairs: PostingLine[][] = [];
    /** what the shares did, and their reversal's date (a settlement realizes, or gives back, shares of one reversal's date) */
    const kinds = new Map<string, { direction: string; on: string }>();
    /** the settled documents whose shares move (a share moves a pair per unrealized FX account) */
    const documents = new Set<string>();
    for (const share of x.shares) {
      const realized = share.kind === 'gain' ? s.fxGainAccountId : s.fxLossAccountId;
      const amount = fixed(share.amount, context.baseMu);
      if (realized === share.unrealized || D(amount).isZero()) continue;
      if (!realized) {
        const message = 'the settled share of an FX-revalued item realizes its revaluation result: configure fxGainAccountId and fxLossAccountId in the ledger settings first';
        throw x.fxAccountsMissing?.(message) ?? LedgerErrors.error('ledger.fx_accounts_missing', message);
      }
      const direction = share.givenBack ? 'unrealized again' : 'realized';
      const description = `FX revaluation ${share.kind} of the settled share ${direction} (its reversal dated ${share.on})`;
      kinds.set(`${direction}|${share.on}`, { direction, on: share.on });
      documents.add(share.documentId);
      // realizing a gain (a credit): off the unrealized account (debit) onto the realized one (credit); a loss the mirror; given back: the other way
      const [debit, credit] = (share.kind === 'gain') !== share.givenBack ? [share.unrealized, realized] : [realized, share.unrealized];
      pairs.push([{ accountId: debit, debit: amount, description }, { accountId: credit, credit: amount, description }]);
    }
    if (!pairs.length) return [];
    const [kind] = kinds.values();
    const what = kinds.size > 1 ? 'FX revaluation results of settled shares realized or unrealized again'
      : documents.size > 1 ? `FX revaluation result of ${documents.size} settled shares ${kind.direction} (their reversals dated ${kind.on})`
        : `FX revaluation result of the settled share ${kind.direction} (its reversal dated ${kind.on})`;
    const split = parts(pairs, Math.floor(MAX_POSTED_LINES / 2));
    const entries: string[] = [];
    for (const [i, part] of split.entries()) {
      const { entry } = await this.post(tx, {
        date: x.date, memo: generatedMemo('', x.memo, `: ${partMemo(what, i, split.length)}`), source: 'system', sourceRef: FX_REALIZED_SHARE_REF, lines: part.flat(),
      });
      entries.push(entry.id);
    }
    return entries;
  }

  /**
   * The part of what an open item carries on each unrealized FX account as of `asOf` (carriedPerFxAccount) that a share
   * of `settled` of its `open` amount takes (a credit note: the credited share's revaluation, taken back off the accounts
   * it is on): each account's amount times the settled fraction, all of it for the last share, in the base currency's
   * minor units summing to exactly `total` (what the share takes of the item's revaluation, as its aging shows it).
   * '' for rows whose account is not found (the settings' account of the part's kind). `exact`: the item's shares settled
   * since its first revaluation were all credit notes that wrote their rows (recordTakenOff): each account's amount is
   * what its rows leave there, so the last share takes exactly what the earlier ones left. `baseMu`: the base currency's
   * minor units, as the caller read them with its settings (not read again here).
   */
  async revaluationShareOf(tx: TenantTx, subledger: Subledger, item: Omit<RevaluedItem, 'open'> & { open: string; ownRate: string; exact: boolean }, asOf: string,
    settled: Decimal, total: Decimal, baseMu: number): Promise<Map<string, Decimal>> {
    const { open, ownRate, exact, ...revalued } = item;
    const carried = (await this.carriedPerFxAccount(tx, subledger, [{ ...revalued, open: { amount: open, ownRate, exact } }], asOf, baseMu)).get(item.documentId);
    const fraction = settled.eq(open) ? D(1) : settled.div(open);
    return partsOf(new Map([...carried ?? []].map(([id, a]) => [id, a.carried.times(fraction)])), total, baseMu);
  }

  /**
   * What a settlement posted by its subledger (a credit note, in its own entry `entryId`) took off an item's revaluation
   * on each unrealized FX account (`parts`, as the item's aging shows it: a raised item's part positive): a
   * finance.fx_revaluation_items row each, of the opposite, dated `date`, at the rate the item stays carried at, so that
   * what the item's rows leave on each account is what it still carries there (revaluationShareOf, a void).
   */
  async recordTakenOff(tx: TenantTx, taken: { subledger: Subledger; entryId: string; date: string; documentId: string; rate: string; parts: Map<string, Decimal> }): Promise<void> {
    const createdBy = actorOf(tx.principal).actorId;
    await repo.insertRevaluationItems(tx.db, tx.orgId, [...taken.parts].filter(([, part]) => !part.isZero()).map(([fxAccountId, part]) => ({
      entryId: taken.entryId, date: taken.date, subledger: taken.subledger, documentId: taken.documentId, rate: taken.rate, delta: part.neg().toFixed(), fxAccountId, createdBy })));
  }

  /**
   * An allocation's reversal (dated `asOf`) of either subledger gives back `share.amount` of an item (as its aging shows
   * it: a payment's credit negative) that the allocation took off at `share.takenOff` on `share.settledOn`; `now`, the
   * share's value at what the item carries as of `asOf`; `item.open`, what is open of the item without the share (signed
   * alike); `revalued`, whether the item has revaluation rows by then (else it is carried at its own rate and nothing
   * changed). Answers the value the share comes back at (what was taken off, when every change since counted) and the
   * changes since (shareChangesSince), which restoreShare writes as the item's rows on their unrealized FX accounts
   * instead of the realized result.
   */
  private async shareGivenBack(tx: TenantTx, item: { subledger: Subledger; documentId: string; ownRate: string; open: Decimal; revalued: boolean },
    share: { amount: Decimal; settledOn: string; settledSeq: string | null; takenOff: Decimal },
    now: Decimal, asOf: string, baseMu: number): Promise<{ value: Decimal; changes: ShareChange[] }> {
    const changes = item.revalued ? await this.shareChangesSince(tx, item, share, asOf, now.minus(share.takenOff), baseMu) : [];
    return { value: now.minus(changes.reduce((sum, c) => sum.plus(c.part), D(0))), changes };
  }

  /**
   * The reversal of a settlement of `share.amount` of an item dated `share.settledOn` (an allocation's reversal, dated
   * `asOf`) gives the share back carrying what the item carries now; what the rows posted after the settlement (dated
   * after it, or on its day and posted after it: `share.settledSeq`) up to
   * `asOf` changed of the item (a revaluation, or a reversal of one posted ahead) the share did not go through while
   * settled. Per unrealized FX account (each row's own; '' for an older row whose account is not stored), each such row's
   * change of the share's value, the share's value at a rate being what the item carries open with it less what it carries
   * open without it as of the row's date (`item.open` and what settled it since: another allocation between the row and
   * `asOf` would otherwise put its own rounding into the row's part, a minor unit realized at the reversal), each rounded
   * as a revaluation rounds an item (so a row's part is exactly what the row,
   * or its reversal, moves of the item with the share against without it, and the parts add up with no rounding left to
   * put anywhere), so the reversal writes them as rows of the item (restoreShare) rather than into its
   * realized result: what the item's rows leave on each account is then what the accounts hold of it (a void, a credit
   * note or a later settlement takes each account's own amount). `realizedOn`: a reversal of a revaluation dated on or
   * before the settlement, whose part of the share the settlement's compensation realized (given back by restoreShare).
   * `reversedOn`: a revaluation whose own reversal is posted ahead of `asOf` (autoReverse): that reversal takes it off
   * only what was open then, so the part is taken back off on the reversal's date as well (restoreShare): none of it is
   * a realized result, and settlePendingReversals finds nothing left to compensate on that date. In the base
   * currency's minor units, summing to exactly `total` (the share's value now less what the settlement took off) when
   * they come to it within a minor unit per row (they differ when the item's rounding history does, another settlement
   * since say: partsOf). None when no row changed the share since.
   */
  private async shareChangesSince(tx: TenantTx, item: { subledger: Subledger; documentId: string; ownRate: string; open: Decimal },
    share: { amount: Decimal; settledOn: string; settledSeq: string | null }, asOf: string, total: Decimal, baseMu: number): Promise<ShareChange[]> {
    /**
     * whether a row was in the books before the settlement: dated before it, or on its day and posted before it (a lower
     * seq: the usual month end posts the last day's payment, then that day's revaluation, which never saw the share);
     * a settlement written before its posting_seq was stored (null) counts every row of its day as before it
     */
    const beforeSettlement = (r: { date: string; seq: string }) => r.date < share.settledOn
      || (r.date === share.settledOn && (share.settledSeq === null || BigInt(r.seq) < BigInt(share.settledSeq)));
    /** the share's value at a rate, `open` without it open: the item open with it less without it, each rounded (a revaluation's target) */
    const valueAt = (open: Decimal, r: Decimal) => baseShare(open.plus(share.amount), share.amount, r, baseMu);
    /**
     * what the subledger says is open of the item (without the share, still settled) as of a date; as a row of `seq` saw
     * it when given: a settlement of that day posted after the row (an allocation, a refund: their posting_seq) does not
     * count (the row did not value it)
     */
    const openOn = new Map<string, Decimal>();
    const openAsOf = async (date: string, seq?: string): Promise<Decimal> => {
      const key = `${date}|${seq ?? ''}`;
      if (!openOn.has(key)) openOn.set(key, D((await this.revalued.openItemsOf(tx, item.subledger, date, [item.documentId], seq))[0]?.open ?? 0));
      return openOn.get(key)!;
    };
    const rows = await repo.revaluationRowsOf(tx.db, tx.orgId, [item.documentId], '9999-12-31');
    /** the reversals dated after `asOf`, by the revaluation they reverse: they take its part of the share off on their own date */
    const reversedLater = new Map(rows.filter((r) => r.reverses && r.date > asOf).map((r) => [r.reverses!, { on: r.date, rate: r.rate }]));
    let rate = D(item.ownRate);
    const steps = new Map<string, { step: Decimal; before: boolean }>();
    const amounts = new Map<string, Decimal>();
    const realizedOn = new Map<string, string>();
    const reversedOn = new Map<string, { on: string; rate: string }>();
    let counted = 0;
    for (const row of rows) {
      // the rate steps as carriedPerFxAccount reads them
      const reversed = row.reverses ? steps.get(row.reverses) : undefined;
      const step = row.compensation || row.credited ? D(0) : reversed ? reversed.step.neg() : D(row.rate).minus(rate);
      if (!row.reverses && !row.credited) steps.set(row.entryId, { step, before: beforeSettlement(row) });
      const before = rate;
      if (!row.credited) rate = D(row.rate);
      if (beforeSettlement(row) || row.date > asOf || step.isZero()) continue;
      const realized = reversed?.before ? row.date : undefined;
      const pending = !row.reverses ? reversedLater.get(row.entryId) : undefined;
      const key = `${row.fxAccountId ?? ''}|${realized ?? ''}|${pending ? `${pending.on}|${pending.rate}` : ''}`;
      // the difference of rounded values, not the share times the step rounded: a pending part is then exactly what its
      // reversal takes off the item given back (rounding each part on its own left a minor unit to settle as realized)
      // at what was open on the row's date: another settlement since (before `asOf`) changed the share's rounded value, not
      // the row (what it settled of the open amount then, at the rate then, is its own, not this share's)
      const open = item.open.plus((await openAsOf(row.date, row.seq)).minus(await openAsOf(asOf)));
      amounts.set(key, (amounts.get(key) ?? D(0)).plus(valueAt(open, before.plus(step)).minus(valueAt(open, before))));
      if (realized) realizedOn.set(key, realized);
      if (pending) reversedOn.set(key, pending);
      counted++;
    }
    if (!amounts.size) return [];
    const sum = [...amounts.values()].reduce((a, b) => a.plus(b), D(0));
    const exact = sum.minus(total).abs().lte(D(10).pow(-baseMu).times(counted));
    const parts = exact ? partsOf(amounts, total, baseMu) : new Map([...amounts].map(([key, a]) => [key, D(fixed(a, baseMu))]));
    return [...parts].filter(([, part]) => !part.isZero()).map(([key, part]) => ({
      fxAccountId: key.slice(0, key.indexOf('|')), part, ...(realizedOn.has(key) ? { realizedOn: realizedOn.get(key)! } : {}),
      ...(reversedOn.has(key) ? { reversedOn: reversedOn.get(key)! } : {}) }));
  }

  /**
   * Writes what shareChangesSince answered for a share given back (an allocation's reversal, dated `date`:
   * giveBackAllocation): a finance.fx_revaluation_items row per account and its pair of lines (the control account's and the
   * unrealized FX account's: '' the settings' one of the part's kind), one entry marked as a settlement's compensation
   * (FX_SETTLED_SHARE_REF: a revaluation's rate steps already count the share), at the rate the item is carried at; and
   * the parts the settlement had realized (`realizedOn`) moved back from the realized FX accounts to the unrealized ones
   * (realizeSettledShares, given back); the parts whose revaluation's reversal is posted ahead (`reversedOn`) taken
   * back off on that date, as settlePendingReversals compensates a settled share (one entry per date, refused as its
   * compensation when that date's period is closed), so that nothing of them is realized. Answers the entries posted.
   * `context`: the ledger settings and the base currency's minor units, as the caller read them.
   */
  private async restoreShare(tx: TenantTx, s: {
    subledger: Subledger; documentId: string; accountId: string; currency: string; rate: string; date: string; memo: string;
    counterpartyType: string; counterpartyId: string; changes: ShareChange[]; fxAccountsMissing?: (message: string) => Error;
  }, context: { settings: LedgerSettingsDto; baseMu: number }): Promise<SettledReversals> {
    if (!s.changes.length) return noSettledReversals();
    const { settings } = context;
    const { documentId, accountId, currency, rate, changes, fxAccountsMissing, ...change } = s;
    const description = generatedMemo('', s.memo, ': FX revaluation of the share given back');
    const items: CarriedChange[] = [];
    const shares: SettledShare[] = [];
    for (const c of changes) {
      const kind = this.resultKind(s.subledger, c.part);
      const fxAccountId = c.fxAccountId || (unrealizedFxAccounts(settings)[kind] ?? undefined);
      items.push({ documentId, accountId, currency, rate, delta: c.part, fxAccountId, description });
      // the settlement realized the opposite (what the reversal's compensation put back on the settled share)
      if (c.realizedOn && fxAccountId) {
        shares.push({ documentId, on: c.realizedOn, amount: c.part.abs(), kind: this.resultKind(s.subledger, c.part.neg()), unrealized: fxAccountId, givenBack: true });
      }
    }
    const compensationEntryIds = await this.changeCarried(tx, { ...change, memo: description, sourceRef: FX_SETTLED_SHARE_REF, items }, context);
    // a part whose revaluation's reversal is posted ahead: taken back off on that date, at the rate the reversal leaves
    for (const on of [...new Set(changes.flatMap((c) => (c.reversedOn ? [c.reversedOn.on] : [])))]) {
      const memo = generatedMemo('', s.memo, `: FX revaluation reversal of ${on} on the share given back`);
      const reversing = items.flatMap((item, i) => (changes[i].reversedOn?.on === on ? [{ ...item, rate: changes[i].reversedOn!.rate, delta: item.delta.neg(), description: memo }] : []));
      compensationEntryIds.push(...await this.compensation(tx, on, () => this.changeCarried(tx, { ...change, date: on, memo, sourceRef: FX_SETTLED_SHARE_REF, items: reversing }, context)));
    }
    const realizationEntryIds = shares.length ? await this.realizeSettledShares(tx, { date: s.date, memo: s.memo, shares, fxAccountsMissing }, context) : [];
    return { compensationEntryIds, realizationEntryIds };
  }

  /**
   * An allocation's reversal (dated `r.date`) of either subledger, in the order both post it: each side's share given
   * back (shareGivenBack: the settled item's, an invoice or a bill, then the payment's credit), `post` with the values
   * they come back at, in that order (the reversal's realized result and allocation row, the subledger's own), what
   * revaluations since changed of each share written as its rows (restoreShare), then the revaluations' reversals posted
   * ahead of it taking off the shares given back no more (settlePendingReversals, given back; nothing is pending for a
   * base-currency allocation, `foreign` false). `settledSeq`: the allocation's posting_seq (a row dated `settledOn` and
   * posted after it is a change since; null for an allocation written before it was stored: none of that day is).
   * `fxAccountsMissing`: the subledger's error when a realized FX account is
   * missing (absent: the ledger's). Answers what `post` answered and the entries posted after it (for the audit row).
   */
  async giveBackAllocation<T>(tx: TenantTx, r: {
    subledger: Subledger; accountId: string; currency: string; date: string; memo: string; counterpartyType: string; counterpartyId: string;
    settledOn: string; settledSeq: string | null; foreign: boolean; sides: [AllocationSide, AllocationSide]; fxAccountsMissing?: (message: string) => Error;
  }, context: { settings: LedgerSettingsDto; baseMu: number }, post: (values: [Decimal, Decimal]) => Promise<T>): Promise<{ posted: T; fxEntries: SettledReversals }> {
    const { sides, settledOn, settledSeq, foreign, ...restore } = r;
    const shares: { value: Decimal; changes: ShareChange[] }[] = [];
    for (const side of sides) {
      shares.push(await this.shareGivenBack(tx, { subledger: r.subledger, documentId: side.documentId, ownRate: side.ownRate, open: side.open, revalued: side.revaluedRate !== undefined },
        { amount: side.amount, settledOn, settledSeq, takenOff: side.takenOff }, side.now, r.date, context.baseMu));
    }
    const posted = await post([shares[0].value, shares[1].value]);
    const entries: SettledReversals[] = [];
    for (const [i, side] of sides.entries()) {
      entries.push(await this.restoreShare(tx, { ...restore, documentId: side.documentId, rate: side.revaluedRate ?? side.ownRate, changes: shares[i].changes }, context));
    }
    entries.push(await this.settlePendingReversals(tx, {
      subledger: r.subledger, date: r.date, memo: r.memo, counterpartyType: r.counterpartyType, counterpartyId: r.counterpartyId, realize: 'givenBack',
      documents: foreign ? sides.map((s) => ({ documentId: s.documentId })) : [], fxAccountsMissing: r.fxAccountsMissing }));
    return { posted, fxEntries: {
      compensationEntryIds: entries.flatMap((e) => e.compensationEntryIds), realizationEntryIds: entries.flatMap((e) => e.realizationEntryIds) } };
  }

  /**
   * What open items of a subledger carry as of `asOf` per unrealized FX account their finance.fx_revaluation_items rows
   * (revaluations, reversals, compensations, what a void took off) moved them against (each row's own account, as its
   * writer stored it, whatever the settings say by now), the accounts in the order they first moved the item; '' for
   * the rows whose account is not found; only the rows dated `from` on when given. A row written before the account was
   * stored and that migration 20270210250100 could not tell (fxAccountId null) is read from its entry's lines: the
   * entry's pair of the item's control account and currency when it has one account for it, else among its pairs one of
   * the row's change (and the item's counterparty), each pair taken once.
   *
   * `carried` is `booked` (the rows' sum) for an item without `open` or with `open.exact`. With `open`, a settled share
   * took its part of each account with it: a row counts for the part still open, its rate step (a revaluation's rate over
   * the rate before it; a reversal's, its revaluation's taken back) times the open amount, or whole when that is within
   * a minor unit of it (no share settled since it); a compensation, which put back what a reversal took off settled
   * shares, and what a credit note took off (its share, already out of the open amount) count nothing.
   */
  private async carriedPerFxAccount(tx: TenantTx, subledger: Subledger, items: RevaluedItem[], asOf: string, baseMu: number,
    from?: string): Promise<Map<string, Map<string, FxAccountAmount>>> {
    const rows = await repo.revaluationRowsOf(tx.db, tx.orgId, items.map((i) => i.documentId), asOf);
    const byDocument = new Map(items.map((i) => [i.documentId, i]));
    // older rows without their account only: their entries' pairs, per entry
    const pairsOf = new Map<string, Awaited<ReturnType<typeof repo.revaluationFxAccounts>>>();
    for (const pair of await repo.revaluationFxAccounts(tx.db, tx.orgId, [...new Set(rows.filter((r) => !r.fxAccountId).map((r) => r.entryId))])) {
      pairsOf.set(pair.entryId, [...pairsOf.get(pair.entryId) ?? [], pair]);
    }
    const sign = this.revalued.side(subledger) === 'debit' ? 1 : -1;
    const unit = D(10).pow(-baseMu);
    const taken = new Set<object>();
    const out = new Map<string, Map<string, FxAccountAmount>>();
    /** per document, the rate its rows so far leave it carried at and each revaluation entry's rate step */
    const rates = new Map<string, { rate: Decimal; steps: Map<string, Decimal> }>();
    for (const row of rows) {
      const item = byDocument.get(row.documentId)!;
      let fxAccountId = row.fxAccountId ?? '';
      if (!row.fxAccountId) {
        const candidates = (pairsOf.get(row.entryId) ?? []).filter((x) => x.accountId === item.accountId && x.currency === item.currency
          && (x.counterpartyId === null || x.counterpartyId === item.counterpartyId));
        let pair = candidates[0];
        if (new Set(candidates.map((c) => c.fxAccountId)).size > 1) {
          const free = candidates.filter((c) => !taken.has(c));
          pair = free.find((c) => D(c.control).equals(D(row.delta).times(sign))) ?? free[0] ?? pair;
          taken.add(pair);
        }
        fxAccountId = pair?.fxAccountId ?? '';
      }
      let chain = rates.get(row.documentId);
      if (!chain) rates.set(row.documentId, (chain = { rate: D(item.open?.ownRate ?? row.rate), steps: new Map() }));
      const reversed = row.reverses ? chain.steps.get(row.reverses) : undefined;
      const step = row.compensation || row.credited ? D(0) : reversed ? reversed.neg() : D(row.rate).minus(chain.rate);
      if (!row.reverses && !row.credited) chain.steps.set(row.entryId, step);
      if (!row.credited) chain.rate = D(row.rate);
      if (from && row.date < from) continue;
      const perAccount = out.get(row.documentId) ?? new Map<string, FxAccountAmount>();
      out.set(row.documentId, perAccount);
      const amount = perAccount.get(fxAccountId) ?? { booked: D(0), carried: D(0) };
      perAccount.set(fxAccountId, amount);
      const delta = D(row.delta);
      amount.booked = amount.booked.plus(delta);
      if (!item.open || item.open.exact) {
        amount.carried = amount.carried.plus(delta);
      } else if (!row.compensation && !row.credited && !D(item.open.amount).isZero()) {
        const onOpen = D(item.open.amount).times(step);
        amount.carried = amount.carried.plus(step.isZero() || onOpen.minus(delta).abs().lte(unit) ? delta : onOpen);
      }
    }
    return out;
  }

  /** Whether a change of an item (as its aging shows it) is a gain: one that raises the control account's debit side (an AR item raised, an AP item lowered). */
  private resultKind(subledger: Subledger, change: Decimal): 'gain' | 'loss' {
    return change.times(this.revalued.side(subledger) === 'debit' ? 1 : -1).gt(0) ? 'gain' : 'loss';
  }

  /**
   * Changes what open items of a subledger carry, each by its `delta` (as its aging shows it), dated `date`: a
   * finance.fx_revaluation_items row each, and its pair of lines (the control account's, and an unrealized FX account's:
   * the one a revaluation making this change would use (the control account raised: the gain account; lowered: the loss
   * account), or, `undoing` the item's revaluations (a void), the one they used (what they raised is taken back off the
   * gain account); `fxAccount`: that account named (a compensation posts to the account of the reversal it compensates)).
   * One entry for all the items, in parts when their lines are more than a posting takes (each balanced by its own
   * items' pairs), each row linked to the part that moved its item. `context`: the settings and the base currency's minor
   * units when the caller has read them. Answers the entries.
   */
  private async changeCarried(tx: TenantTx, change: {
    subledger: Subledger; date: string; memo: string; counterpartyType: string; counterpartyId: string; sourceRef?: string; items: CarriedChange[];
  }, context?: { settings: LedgerSettingsDto; baseMu: number }): Promise<string[]> {
    const s = context?.settings ?? await this.ledger.settings(tx);
    const { gain, loss } = unrealizedFxAccounts(s);
    if (!gain || !loss) throw LedgerErrors.error('ledger.fx_accounts_missing', 'configure fxUnrealizedGainAccountId and fxUnrealizedLossAccountId (or fxGainAccountId and fxLossAccountId) in the ledger settings first');
    const baseMu = context?.baseMu ?? await this.ledger.currencyUnits(tx, s.baseCurrency);
    // on the account's debit side: an AR item adds to it, an AP item (a credit) takes from it
    const sign = this.revalued.side(change.subledger) === 'debit' ? 1 : -1;
    const pairs = change.items.map((item): { fxAccount: string; lines: PostingLine[] } => {
      const onDebit = item.delta.times(sign);
      const amount = fixed(onDebit.abs(), baseMu);
      const description = (item.description ?? change.memo).slice(0, 500);
      const control = { accountId: item.accountId, currency: item.currency, rate: item.rate, counterpartyType: change.counterpartyType, counterpartyId: change.counterpartyId, description };
      const fxAccount = item.fxAccountId ?? (onDebit.gt(0) !== (item.undoing ?? false) ? gain : loss);
      return { fxAccount, lines: onDebit.gt(0)
        ? [{ ...control, baseDebit: amount }, { accountId: fxAccount, credit: amount, description }]
        : [{ ...control, baseCredit: amount }, { accountId: fxAccount, debit: amount, description }] };
    });
    const split = parts(change.items.map((item, i) => ({ item, ...pairs[i] })), Math.floor(MAX_POSTED_LINES / 2));
    const actor = actorOf(tx.principal).actorId;
    const entries: string[] = [];
    const rows: Parameters<typeof repo.insertRevaluationItems>[2] = [];
    for (const [i, part] of split.entries()) {
      const memo = split.length > 1 ? generatedMemo('', change.memo, ` (part ${i + 1} of ${split.length})`) : change.memo;
      const { entry } = await this.post(tx, {
        date: change.date, memo, source: 'system', ...(change.sourceRef ? { sourceRef: change.sourceRef } : {}), lines: part.flatMap((p) => p.lines),
      }, 'ledger.fx_revaluation_posted');
      entries.push(entry.id);
      for (const { item, fxAccount } of part) {
        rows.push({ entryId: entry.id, date: change.date, subledger: change.subledger, documentId: item.documentId, rate: item.rate, delta: item.delta.toFixed(), fxAccountId: fxAccount, createdBy: actor });
      }
    }
    await repo.insertRevaluationItems(tx.db, tx.orgId, rows);
    return entries;
  }

  /**
   * The one account of entry `entryId`'s lines that is none of `exclude` (the control and bank accounts of an
   * allocation's or payment's entry: what is left is its realized FX result's account), or undefined when there is
   * none or more than one. A reversal posts its result back there, whatever the settings say by then.
   */
  async resultAccountOf(tx: TenantTx, entryId: string, exclude: string[]): Promise<string | undefined> {
    const entry = await this.get(tx, entryId);
    const accounts = new Set(entry.lines.map((l) => l.accountId).filter((id) => !exclude.includes(id)));
    return accounts.size === 1 ? [...accounts][0] : undefined;
  }

  /**
   * An open item of a subledger that leaves it without being settled (a voided invoice or bill): its aging drops it
   * whole, so what FX revaluations added to (or took off) its control account leaves the account too, back against the
   * unrealized FX accounts the revaluations posted it to, each account's own amount (carriedPerFxAccount: a gain taken
   * back off the gain account, a loss off the loss account, an account of the settings before a change off that one,
   * whatever the settings say by now), not the item's net off one of them. Posted dated `date`, one entry: per account
   * a pair of lines and a finance.fx_revaluation_items row of the opposite of its amount, so that the item carries
   * nothing after it (and a later revaluation leaves it alone). Answers the entry, or null when no revaluation touched
   * the item (or each account's amount came to 0).
   */
  async takeOffRevaluations(tx: TenantTx, item: {
    subledger: Subledger; documentId: string; accountId: string; currency: string; rate: string; date: string; memo: string;
    counterpartyType: string; counterpartyId: string;
  }): Promise<string | null> {
    // what it carries as of the void, per account; a reversal posted ahead is taken off on its own date (settlePendingReversals)
    const s = await this.ledger.settings(tx);
    const carried = (await this.carriedPerFxAccount(tx, item.subledger, [item], item.date, await this.ledger.currencyUnits(tx, s.baseCurrency))).get(item.documentId)
      ?? new Map<string, FxAccountAmount>();
    const { documentId, accountId, currency, rate, ...change } = item;
    const description = `FX revaluation taken off (${item.memo})`;
    // rows of no account found: the settings' account of what they did (undoing)
    const items = [...carried].filter(([, a]) => !a.carried.isZero()).map(([fxAccountId, a]): CarriedChange => ({
      documentId, accountId, currency, rate, delta: a.carried.neg(), fxAccountId: fxAccountId || undefined, description, undoing: true }));
    if (!items.length) return null;
    const [entry] = await this.changeCarried(tx, { ...change, items });
    return entry;
  }

  /**
   * The fiscal year, locked (FOR UPDATE, which RLS grants owners and admins only): a year the caller sees but cannot
   * lock is a 403, one it does not see a 404.
   */
  private async lockYear(tx: TenantTx, yearId: string, doing: 'closing' | 'reopening') {
    const year = await repo.lockYear(tx.db, tx.orgId, yearId);
    if (!year) {
      await this.ledger.getYear(tx, yearId);
      throw PlatformErrors.error('forbidden.role', `${doing} a fiscal year needs the role owner or admin`);
    }
    return year;
  }

  /** Year-end close: revenue and expense balances of the year move to retained earnings; every period and the year close. */
  async closeYear(tx: TenantTx, yearId: string): Promise<YearEndResultDto> {
    await this.ledger.settings(tx); // 422 ledger.books_not_started before anything else; read again once the drain is held
    // an earlier year still open would take postings that change this year's closed figures: it closes first. Its row
    // is locked FOR SHARE before the drain below, as a reopening locks its year before it posts (no lock cycle); its
    // status is read from the locked row (a reopening in flight is waited for). finance.check_close_order is the rule.
    const open = (await repo.lockEarlierYears(tx.db, tx.orgId, yearId)).find((e) => e.status !== 'closed');
    if (open) throw LedgerErrors.error('ledger.earlier_year_open', `close the earlier fiscal year ${open.start_date} to ${open.end_date} first`);
    // the year's row, then the posting lock, then its periods (repo.closeYear): the order a year's reopening and a
    // period's close or reopening take them in too (reopenYear, LedgerService.setPeriodStatus), so none waits for another
    // in a cycle; the periods' statuses read below hold until this commits (each change of one takes the posting lock)
    const year = await this.lockYear(tx, yearId, 'closing');
    if (year.status === 'closed') throw LedgerErrors.error('ledger.year_closed', `fiscal year ${year.start_date} to ${year.end_date} is already closed`);
    // the year's totals are read once no posting is in flight, and none starts before the close commits: a posting
    // committing between the read and the close would stay in the closed year, outside the closing entry
    await repo.drainPostings(tx.db, tx.orgId);
    // the settings once the drain is held: a settings change drains too, so retained earnings cannot change before this commits
    const s = await this.ledger.settings(tx);
    if (!s.retainedEarningsAccountId) throw LedgerErrors.error('ledger.retained_earnings_missing', 'configure retainedEarningsAccountId in the ledger settings first');
    const before = await this.ledger.getYear(tx, yearId);
    const last = before.periods[before.periods.length - 1];
    if (last.status !== 'open') throw LedgerErrors.error('ledger.period_closed', `reopen the last period (${last.startDate} to ${last.endDate}) to post the closing entry`);
    const accounts = new Map((await this.ledger.listAccounts(tx, true)).map((a) => [a.id, a]));
    /** the closing lines, each with the base amount it moves out of its account (debit positive) */
    const lines: { line: PostingLine; baseNet: Decimal }[] = [];
    const totals = (await repo.totals(tx.db, year.start_date, year.end_date))
      .filter((t) => ['revenue', 'expense'].includes(accounts.get(t.account_id)?.type ?? ''))
      // lines in chart order (account code, then currency), as an accountant reads them
      .sort((a, b) => accounts.get(a.account_id)!.code.localeCompare(accounts.get(b.account_id)!.code) || a.currency.localeCompare(b.currency));
    for (const t of totals) {
      const net = D(t.debit).minus(t.credit);
      const baseNet = D(t.base_debit).minus(t.base_credit);
      const txn = net.isZero() ? {} : net.gt(0) ? { credit: net.toFixed() } : { debit: net.neg().toFixed() };
      const base = baseNet.isZero() ? {} : baseNet.gt(0) ? { baseCredit: baseNet.toFixed() } : { baseDebit: baseNet.neg().toFixed() };
      const rate = net.isZero() || baseNet.isZero() ? '1' : baseNet.div(net).abs().toDecimalPlaces(10).toFixed();
      const common = { accountId: t.account_id, currency: t.currency, description: 'year-end close' };
      if (t.currency === s.baseCurrency || (net.isZero() ? baseNet.isZero() : net.gt(0) === baseNet.gt(0) && !baseNet.isZero())) {
        if (!net.isZero() || !baseNet.isZero()) lines.push({ line: { ...common, ...txn, ...(t.currency === s.baseCurrency ? {} : { rate, ...base }) }, baseNet });
      } else {
        // the transaction and base amounts point different ways (or one is zero): close them on separate lines
        if (!net.isZero()) lines.push({ line: { ...common, ...txn, rate, baseDebit: '0' }, baseNet: D(0) });
        if (!baseNet.isZero()) lines.push({ line: { ...common, rate, ...base }, baseNet });
      }
    }
    // an entry takes MAX_POSTED_LINES: a year with more balances closes in several entries, each moving its part of the
    // result to retained earnings, all in this transaction (the close is whole or not at all); the first is the year's
    // closingEntryId, all of them are reversed when the year reopens (closingEntriesOf)
    const closingEntries: JournalEntryDto[] = [];
    if (lines.length) {
      const split = parts(lines, MAX_POSTED_LINES - 1);
      // one key per closing entry: a year reopened (its closing entries reversed) and closed again posts new ones
      const earlier = await repo.yearEndEntryCount(tx.db, tx.orgId, yearId);
      for (const [i, part] of split.entries()) {
        const result = part.reduce((sum, l) => sum.plus(l.baseNet), D(0));
        const posting = part.map((l) => l.line);
        // a profit (credit balance overall) is credited to retained earnings, a loss debited
        if (result.lt(0)) posting.push({ accountId: s.retainedEarningsAccountId, credit: result.neg().toFixed(), description: 'year-end close' });
        if (result.gt(0)) posting.push({ accountId: s.retainedEarningsAccountId, debit: result.toFixed(), description: 'year-end close' });
        // an entry of one currency balances in it (finance.check_entry; one of several currencies in base only): a part
        // of lines in one foreign currency whose result is zero in base has no base line above, so retained earnings
        // takes its result in that currency, at a base amount of zero (the base result)
        const currencies = new Set(posting.map((l) => l.currency ?? s.baseCurrency));
        const net = posting.reduce((sum, l) => sum.plus(l.debit ?? 0).minus(l.credit ?? 0), D(0));
        if (result.isZero() && currencies.size === 1 && !currencies.has(s.baseCurrency) && !net.isZero()) {
          posting.push({ accountId: s.retainedEarningsAccountId, currency: [...currencies][0], rate: '1',
            ...(net.gt(0) ? { credit: net.toFixed(), baseCredit: '0' } : { debit: net.neg().toFixed(), baseDebit: '0' }), description: 'year-end close' });
        }
        const n = earlier + i;
        closingEntries.push((await this.post(tx, {
          date: year.end_date, memo: partMemo(`Year-end close ${year.start_date} to ${year.end_date}`, i, split.length), source: 'year_end',
          idempotencyKey: n === 0 ? `year-end:${year.id}` : `year-end:${year.id}:${n + 1}`, lines: posting,
        }, 'ledger.year_end_entry_posted')).entry);
      }
    }
    const closingEntry = closingEntries[0] ?? null;
    await repo.closeYear(tx.db, tx.orgId, yearId, closingEntry?.id ?? null);
    const fiscalYear = await this.ledger.getYear(tx, yearId);
    await this.audit.record(tx, { action: 'ledger.fiscal_year_closed', entityType: 'fiscal_year', entityId: yearId, before: { ...before, periods: undefined }, after: { ...fiscalYear, periods: undefined } });
    await emitEvent(tx, 'fiscal_year.closed', {
      fiscalYearId: yearId, startDate: fiscalYear.startDate, endDate: fiscalYear.endDate, ...(closingEntry ? { closingEntryId: closingEntry.id } : {}),
      ...(closingEntries.length > 1 ? { closingEntryIds: closingEntries.map((e) => e.id) } : {}),
    });
    return { fiscalYear, closingEntry, closingEntries };
  }

  /**
   * Undoes a year-end close: the year and its periods open again and the closing entry is reversed
   * (posted entries never change), so revenue and expense accounts carry the year's result again.
   * Only the latest closed year can reopen: a later closed year was closed on top of it.
   */
  async reopenYear(tx: TenantTx, yearId: string): Promise<YearReopenResultDto> {
    const year = await this.lockYear(tx, yearId, 'reopening');
    if (year.status !== 'closed') throw LedgerErrors.error('ledger.year_open', `fiscal year ${year.start_date} to ${year.end_date} is not closed`);
    const later = await repo.laterClosedYear(tx.db, tx.orgId, year.end_date);
    if (later) throw LedgerErrors.error('ledger.later_year_closed', `reopen the later fiscal year ${later.start_date} to ${later.end_date} first`);
    // the posting lock after the year's row and before its periods, as closeYear and a period's close take them (the
    // periods' update would take it anyway, finance.drain_postings: after their rows, waiting for a period's close that
    // holds it and waits for one of those rows)
    await repo.drainPostings(tx.db, tx.orgId);
    const before = await this.ledger.getYear(tx, yearId);
    await repo.reopenYear(tx.db, tx.orgId, yearId);
    // every entry of the close (one, or several for a year of more balances than an entry takes), in the order posted
    const closing = await repo.closingEntriesOf(tx.db, tx.orgId, yearId, year.closing_entry_id);
    const reversalEntries: JournalEntryDto[] = [];
    for (const [i, id] of closing.entries()) {
      const memo = partMemo(`Reopening of fiscal year ${year.start_date} to ${year.end_date}`, i, closing.length);
      reversalEntries.push((await this.reverse(tx, id, { date: year.end_date, memo })).entry);
    }
    const reversalEntry = reversalEntries[0] ?? null;
    const fiscalYear = await this.ledger.getYear(tx, yearId);
    await this.audit.record(tx, { action: 'ledger.fiscal_year_reopened', entityType: 'fiscal_year', entityId: yearId, before: { ...before, periods: undefined }, after: { ...fiscalYear, periods: undefined } });
    await emitEvent(tx, 'fiscal_year.reopened', {
      fiscalYearId: yearId, startDate: fiscalYear.startDate, endDate: fiscalYear.endDate, ...(reversalEntry ? { reversalEntryId: reversalEntry.id } : {}),
      ...(reversalEntries.length > 1 ? { reversalEntryIds: reversalEntries.map((e) => e.id) } : {}),
    });
    return { fiscalYear, reversalEntry, reversalEntries };
  }
}
