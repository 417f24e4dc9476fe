import { createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import yazl from 'yazl';
import type { Principal } from '../../platform/auth/principal.js';
import { Clock } from '../../platform/clock/clock.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase, runPrivileged } from '../../platform/database/privileged.service.js';
import { SqlPool } from '../../platform/database/sql.js';
import { DatabaseUnavailableError, isTimeoutSqlState, isTransientSqlState, sqlState, translateDatabaseError } from '../../platform/errors/database-errors.js';
import { enqueue, JobRegistry, type Job } from '../../platform/queue/jobs.js';
import { closeIfPending, pendingPayload, triesOf } from '../../platform/queue/outbox.repository.js';
import { AuditService } from '../audit/audit.service.js';
import { AuditSealer, emailSubject, userSubject, WITHHELD } from './audit-sealing.js';
import { archiveName, dataExportRepository as repo, type DataExportKind, type DataExportRow, type ExportTable } from './data-export.repository.js';
import { erasureRepository, locate, organizationsErasedWith } from './erasure.repository.js';
import { PERSONAL_DATA_CATALOG } from './personal-data.catalog.js';
import type { DataExportDto } from './privacy.dto.js';
import { PrivacyErrors } from './privacy.errors.js';

export const DATA_EXPORT_JOB = 'privacy.data_export';
/** The schemas an organization's export reads (every table with an org_id column). */
const OUR_SCHEMAS = ['core', 'hub', 'finance', 'ai', 'public', 'semantic'] as const;
/**
 * An organization's tables left out of its export, internal state that may name people: jobs in flight (their payloads),
 * and the counted limits' and checkouts' locks (a pending Stripe checkout's parameters, which may hold the e-mail address
 * of the admin who asked, even one erased since, for up to 24 hours: personal-data.catalog, hub.limit_locks).
 */
const ORGANIZATION_EXPORT_SKIPS = ['core.outbox', 'hub.limit_locks'];
const BATCH = 500;
const HOUR_MS = 3_600_000;
/**
 * Exports one process writes at once. Each holds one connection of the exports' own pool for as long as it writes (its
 * snapshot), never one of the privileged pool's. A job that finds no turn free waits in nothing of this process: its
 * export is queued again in the outbox (waitSeconds) and the job ends, freeing its worker slot for other topics' jobs.
 */
export const EXPORTS_AT_ONCE = 2;

/** When an export's job that found no turn free (its `waits`-th time) runs again: 1 s, doubling, at most 30 s. */
export const waitSeconds = (waits: number): number => Math.min(30, 2 ** Math.min(waits - 1, 5));

/**
 * A failure that may pass when the export runs again: the database unavailable or restarting, no connection in time, a
 * lost conflict, resources short (isTransientSqlState), but no timeout (isTimeoutSqlState): a timeout may pass for other
 * work, not for an export, which runs the same reads over the same data again (a large organization's times out at every try).
 */
const transient = (err: unknown) => {
  if (err instanceof DatabaseUnavailableError) return true;
  const { code } = sqlState(err);
  return isTransientSqlState(code) && !isTimeoutSqlState(code);
};

/**
 * The class of an export's failure, which its audit names (the organization's audit log serves it): its message, which
 * may name the server's paths (DATA_EXPORT_DIR) or its SQL, stays on the export's row. error: the job failed;
 * timeout: a statement timed out; database_unavailable: a failure that may pass (transient) on the job's last try;
 * abandoned: its job was given up, found by a new request.
 */
type FailureReason = 'error' | 'timeout' | 'database_unavailable' | 'abandoned';
const failureReason = (err: unknown): FailureReason =>
  isTimeoutSqlState(sqlState(err).code) ? 'timeout' : transient(err) ? 'database_unavailable' : 'error';

/** At most `limit` holders at once; no one waits. */
class Turns {
  private held = 0;
  constructor(private readonly limit: number) {}

  /** Runs `work` when a turn is free (true once it has run); false at once when none is. */
  async tryRun(work: () => Promise<void>): Promise<boolean> {
    if (this.held >= this.limit) return false;
    this.held++;
    try {
      await work();
      return true;
    } finally {
      this.held--;
    }
  }
}

/** A download link's token: `<export id>.<expiry ms>.<HMAC>`; stateless, checked against the row as well. */
function linkKey(config: AppConfig): Buffer {
  return createHmac('sha256', config.auth.supabaseJwtSecret).update('omnizen.data_export_link.v1').digest();
}

const csvCell = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** `core."User"` → `core.User` (a file name) */
const fileBase = (table: string) => table.replace(/"/g, '');

/**
 * Data portability (issue 20): a person's export (every catalog table that locates them: JSON per table) and an
 * organization's (every table with its org_id: CSV per table), each one ZIP with a README, written by an outbox job
 * (Bull with REDIS_URL, in-process otherwise) to DATA_EXPORT_DIR. Rows are read through a cursor in batches and
 * streamed into the archive (yazl), so a large history is never held whole. The download link is a signed token valid
 * RETENTION_DATA_EXPORT_HOURS (24 h); the retention job deletes expired files.
 */
@Injectable()
export class DataExportService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(DataExportService.name);
  private readonly turns = new Turns(EXPORTS_AT_ONCE);
  /**
   * The exports' snapshots: each export reads everything in one transaction (one snapshot) held for as long as it writes,
   * on a connection of this pool (one per export writing, EXPORTS_AT_ONCE at most), not of the privileged pool: the
   * progress, start and finish it commits on their own meanwhile take a privileged connection each, briefly, never a
   * second one while holding one, and logins, the relay and the other privileged paths are never kept waiting behind an
   * export (16 of them at once in Bull's worker once held all 5 privileged connections, each waiting for a second one).
   */
  private readonly snapshots: SqlPool;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly jobs: JobRegistry,
    private readonly audit: AuditService,
    private readonly sealer: AuditSealer,
    private readonly clock: Clock,
  ) {
    this.snapshots = new SqlPool(config.databaseUrl, { ...config.database, max: EXPORTS_AT_ONCE }, 'DataExportSnapshots');
  }

  onModuleInit(): void {
    this.jobs.register(DATA_EXPORT_JOB, (job) => this.run(job));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.snapshots.end();
  }

  /** `work` in one transaction of the exports' own pool, as a privileged path (PrivilegedDatabase.run's settings). */
  private snapshot<T>(work: (db: Db) => Promise<T>): Promise<T> {
    return runPrivileged(this.snapshots, 'privacy.export', work);
  }

  /** POST /v1/me/data-export: the signed-in person's export, queued (the job's organization is their personal one). */
  async requestPersonal(principal: Principal, meta: { requestId: string }): Promise<DataExportDto> {
    if (principal.kind !== 'user') throw PrivacyErrors.error('privacy.user_required', 'this route acts for a signed-in person; a service key cannot call it');
    const row = await this.privileged.run('privacy.export', async (db) => {
      const orgId = principal.personalOrgId;
      const inProgress = () => PrivacyErrors.error('privacy.export_in_progress', 'an export of your data is being prepared: wait for it to finish');
      // one whose job was given up is failed first: it would never finish
      if (await repo.unfinished(db, 'person', orgId, principal.userId) && !(await this.failAbandoned(db, 'person', orgId, principal.userId, meta))) throw inProgress();
      // one asked for at the same time, committed while this insert waited for it (migration 20270210870100)
      const made = await translateDatabaseError(repo.insert(db, { kind: 'person', orgId, userId: principal.userId }), { '23505': inProgress });
      await enqueue({ db, orgId }, DATA_EXPORT_JOB, { exportId: made.id });
      await this.audit.recordPrivileged(db, orgId, principal, { action: 'data_export.requested', entityType: 'data_export', entityId: made.id, after: { kind: 'person' } }, meta);
      return made;
    });
    return this.toDto(row);
  }

  /** POST /v1/orgs/{orgId}/data-export (owners): the organization's export, queued in its own transaction. */
  async requestOrganization(tx: TenantTx): Promise<DataExportDto> {
    if (tx.principal.kind !== 'user') throw PrivacyErrors.error('privacy.user_required', 'an organization\'s export is asked for by its owner, not a key');
    const inProgress = () => PrivacyErrors.error('privacy.export_in_progress', 'an export of this organization is being prepared: wait for it to finish');
    // one whose job was given up is failed first (committed on its own: the tenant's transaction cannot read the outbox)
    const userId = tx.principal.userId;
    if (await repo.unfinished(tx.db, 'organization', tx.orgId, userId)
      && !(await this.privileged.run('privacy.export', (db) => this.failAbandoned(db, 'organization', tx.orgId, userId, tx.meta)))) throw inProgress();
    // one asked for at the same time, committed while this insert waited for it (migration 20270210870100)
    const made = await translateDatabaseError(repo.insert(tx.db, { kind: 'organization', orgId: tx.orgId, userId: tx.principal.userId }), { '23505': inProgress });
    await enqueue(tx, DATA_EXPORT_JOB, { exportId: made.id });
    await this.audit.record(tx, { action: 'data_export.requested', entityType: 'data_export', entityId: made.id, after: { kind: 'organization' } });
    return this.toDto(made);
  }

  /**
   * The requester's unfinished export whose job was given up: failed (repo.failAbandoned), each audited as a failure with
   * its reason in the same transaction. Answers whether one was.
   */
  private async failAbandoned(db: Db, kind: DataExportKind, orgId: string, userId: string, meta?: { requestId?: string }): Promise<boolean> {
    const failed = await repo.failAbandoned(db, DATA_EXPORT_JOB, kind, orgId, userId);
    for (const id of failed) await this.auditFailed(db, { id, orgId, kind }, 'abandoned', meta);
    return failed.length > 0;
  }

  /**
   * An export's failure, in the transaction that failed it (its row was queued or running: each failure is audited once),
   * as the system's, with the class of its reason (FailureReason: the message is on the row only) (a failure seen by
   * the request that found it names the request).
   */
  private auditFailed(db: Db, e: { id: string; orgId: string; kind: DataExportKind }, reason: FailureReason, meta?: { requestId?: string }): Promise<void> {
    return this.audit.recordPrivileged(db, e.orgId, 'system', {
      action: 'data_export.failed', entityType: 'data_export', entityId: e.id, after: { kind: e.kind, reason },
    }, meta?.requestId ? { requestId: meta.requestId } : undefined);
  }

  async getPersonal(principal: Principal, id: string): Promise<DataExportDto> {
    if (principal.kind !== 'user') throw PrivacyErrors.error('privacy.user_required', 'this route acts for a signed-in person; a service key cannot call it');
    const row = await this.privileged.run('privacy.export', (db) => repo.get(db, id));
    if (!row || row.kind !== 'person' || row.userId !== principal.userId) throw PrivacyErrors.error('data_export.not_found', `no data export ${id} of yours`);
    return this.toDto(row);
  }

  async getOrganization(tx: TenantTx, id: string): Promise<DataExportDto> {
    const row = await repo.get(tx.db, id); // the policy shows an organization's exports to its owners only
    if (!row || row.kind !== 'organization' || row.orgId !== tx.orgId) throw PrivacyErrors.error('data_export.not_found', `no data export ${id} in this organization`);
    // the link of an export whose requester is no longer the organization's owner answers 410 (open): a co-owner is
    // offered none (it comes back should they be owner again within its time)
    return this.toDto(row, row.status !== 'ready' || await repo.requesterMayOpen(tx.db, row));
  }

  /** GET /v1/data-exports/download?token=: the archive, while the signed link is valid. */
  async open(token: string): Promise<{ stream: Readable; fileName: string; sizeBytes: number }> {
    const id = this.verifyToken(token);
    const found = await this.privileged.run('privacy.export', async (db) => {
      const row = await repo.get(db, id);
      // an organization deleted since (by its owner, or with the person's erasure) has no data to hand out any more; nor
      // has a link whose requester lost access since (no longer the organization's owner, their account gone)
      return row && { row, gone: (row.kind === 'organization' && await repo.organizationDeleted(db, row.orgId)) || !(await repo.requesterMayOpen(db, row)) };
    });
    const row = found?.row;
    if (!row || found.gone || row.status === 'expired' || (row.expiresAt && row.expiresAt.getTime() <= this.clock.now())) {
      throw PrivacyErrors.error('privacy.export_link_expired', 'this download link has expired: ask for a new export');
    }
    // the job names the archive by the export's id: a row naming another file (forged over REST) serves nothing
    if (row.status !== 'ready' || row.fileName !== archiveName(row.id)) throw PrivacyErrors.error('privacy.export_link_invalid', 'this download link is not valid');
    const path = join(this.config.dataExportDir, row.fileName);
    const size = (await stat(path)).size;
    const kind = row.kind === 'person' ? 'personal-data' : 'organization-data';
    return { stream: createReadStream(path), fileName: `omnizen-${kind}-${row.id.slice(0, 8)}.zip`, sizeBytes: size };
  }

  /**
   * A person's erasure, in its transaction: the exports they asked for (their own and their organizations') and those of
   * the organizations it deletes expire at once, a ready archive included (it holds data the erasure removes). Delete the
   * files it answers once that transaction has committed (deleteFiles).
   */
  expireOfPerson(db: Db, userId: string, deletedOrgIds: string[]): Promise<{ count: number; files: string[] }> {
    return repo.expireOfPerson(db, userId, deletedOrgIds);
  }

  async deleteFiles(files: string[]): Promise<void> {
    for (const f of files) await rm(join(this.config.dataExportDir, f), { force: true });
  }

  /**
   * The retention job: expired exports' files are deleted and their rows marked expired; and an archive left on disk by
   * an export that failed or expired (a failure after its file was complete, a file deleted on its erasure that a
   * crash kept) goes too. Answers the files deleted, and the organization of each export it expired.
   */
  async purgeExpired(db: Db, now: Date): Promise<{ files: number; expiredIn: string[] }> {
    const { files, orgIds } = await repo.expire(db, now);
    const onDisk = (await readdir(this.config.dataExportDir).catch(() => [] as string[]))
      .map((f) => /^([0-9a-f-]{36})\.zip$/.exec(f)?.[1]).filter((id): id is string => !!id);
    const left = await repo.finishedWithout(db, onDisk);
    for (const f of [...files, ...left.map(archiveName)]) await rm(join(this.config.dataExportDir, f), { force: true });
    return { files: files.length + left.length, expiredIn: orgIds };
  }

  /**
   * The job: idempotent per export (a finished one is left; an interrupted one starts over). EXPORTS_AT_ONCE of a
   * process's run at once; a job that finds no turn free is written again, due after waitSeconds, and ends at once: it
   * never holds a worker slot while it waits (16 exports of one person, one for each organization they own, once filled
   * all of Bull's 16 and no mail, webhook or event ran on the process until they were done).
   */
  async run(job: Job): Promise<void> {
    const id = String(job.payload.exportId);
    // a job already done (a retry whose first run passed its turn on, its done then not recorded: Bull runs it again)
    // runs nothing: its export is its next job's
    if (!(await this.privileged.run('privacy.export', async (db) => (await pendingPayload(db, job)) !== null))) return;
    if (await this.turns.tryRun(() => this.runNow(job, id))) return;
    const waits = (Number(job.payload.waits) || 0) + 1;
    // in one transaction: this job recorded done and its next written, only by the run that recorded it (a retry of the
    // same job starts no second chain running the export alongside the first), and only while the export is unfinished
    await this.privileged.run('privacy.export', async (db) => {
      if (!(await closeIfPending(db, job))) return;
      const row = await repo.get(db, id);
      if (row?.status !== 'queued' && row?.status !== 'running') return;
      await enqueue({ db, orgId: job.orgId }, DATA_EXPORT_JOB, { exportId: id, waits }, waitSeconds(waits));
    });
  }

  /**
   * Whether this try of the job is its last (its outbox row's tries reached the topic's cap): a failure now makes the job
   * dead, never run again. Not known (the database does not answer, the row is gone): false.
   */
  private async lastTry(job: Job): Promise<boolean> {
    const tries = await this.privileged.run('privacy.export', (db) => triesOf(db, job)).catch(() => null);
    return tries !== null && tries >= this.jobs.maxAttempts(DATA_EXPORT_JOB);
  }

  private async runNow(job: Job, id: string): Promise<void> {
    const row = await this.privileged.run('privacy.export', (db) => repo.get(db, id));
    if (!row || row.status === 'ready' || row.status === 'expired') return;
    const fileName = archiveName(id);
    const final = join(this.config.dataExportDir, fileName);
    const part = `${final}.part`;
    try {
      // committed on its own: the export's transaction must not hold the row its progress updates write
      if (!(await this.privileged.run('privacy.export', (db) => repo.start(db, id, new Date(this.clock.now()))))) return;
      // in the try: a directory that cannot be created (not the process user's, a file in its way) fails the export,
      // recorded (the person sees only that it failed), rather than the job retrying until it is dead
      await mkdir(this.config.dataExportDir, { recursive: true }).catch((err: Error) => {
        throw new Error(`the exports directory (DATA_EXPORT_DIR) cannot be created: ${err.message}`);
      });
      const rowsWritten = await this.snapshot((db) => this.write(db, row, part));
      const sizeBytes = (await stat(part)).size;
      await rename(part, final);
      const now = this.clock.now();
      const finished = await this.privileged.run('privacy.export', async (db) => {
        if (!(await repo.finish(db, id, { fileName, sizeBytes, rowsWritten, completedAt: new Date(now), expiresAt: new Date(now + this.config.retention.dataExportHours * HOUR_MS) }))) return false;
        await this.audit.recordPrivileged(db, row.orgId, 'system', {
          action: 'data_export.completed', entityType: 'data_export', entityId: id, after: { kind: row.kind, rowsWritten, sizeBytes },
        });
        return true;
      });
      // expired while it ran (its person was erased): the archive never becomes downloadable
      if (!finished) await rm(final, { force: true });
    } catch (err) {
      // the archive too, when it was complete (a failure at the finish): a failed export has no file to keep. At best:
      // one that cannot be deleted (its directory unusable) must not keep the failure unrecorded; the retention job
      // deletes an archive a failed export left
      await rm(part, { force: true }).catch(() => undefined);
      // the archive only when this run's outcome is written on the row (or could not be): a run that lost to another of
      // the same export (ready, expired) leaves that one's archive and status as they are
      const dropArchive = () => rm(final, { force: true }).catch(() => undefined);
      // a failure that may pass (the database unavailable, no connection in time) is the job's failed try: it runs again
      // later (the job's retries), the export waiting queued meanwhile, not failed for good; unless this was the job's
      // last try: its job dead, the export would stay queued for ever (and refuse every new request as in progress)
      if (transient(err) && !(await this.lastTry(job))) {
        this.logger.warn(`data export ${id} interrupted, to be tried again: ${(err as Error).message}`);
        if (await this.privileged.run('privacy.export', (db) => repo.requeue(db, id)).catch(() => true)) await dropArchive();
        throw err;
      }
      const reason = err instanceof Error ? err.message : String(err);
      this.logger.warn(`data export ${id} failed: ${reason}`);
      let recorded = true;
      try {
        // audited with the failure, once: only the run that turned the export failed records it
        recorded = await this.privileged.run('privacy.export', async (db) => {
          if (!(await repo.fail(db, id, reason))) return false;
          await this.auditFailed(db, row, failureReason(err));
          return true;
        });
      } finally {
        if (recorded) await dropArchive();
      }
    }
  }

  /** Writes the archive in one transaction (one snapshot of the data); answers the rows written. */
  private async write(db: Db, row: DataExportRow, path: string): Promise<number> {
    const plan = row.kind === 'person' ? await this.personPlan(db, row.userId) : await this.organizationPlan(db, row.orgId);
    await this.progress(row.id, 0, 0, plan.length, 0);
    const zip = new yazl.ZipFile();
    const written = pipeline(zip.outputStream, createWriteStream(path));
    const zipFailed = new Promise<never>((_, reject) => zip.on('error', reject));
    let rows = 0;
    const readme: string[] = [];
    let done = 0;
    for (const step of plan) {
      const name = `${fileBase(step.table.table)}.${row.kind === 'person' ? 'json' : 'csv'}`;
      const entry = new PassThrough();
      zip.addReadStream(entry, name);
      const put = async (text: string) => {
        if (!entry.write(text)) await Promise.race([new Promise((r) => entry.once('drain', r)), zipFailed]);
      };
      let count = 0;
      if (row.kind === 'person') await put('[');
      else await put(`${step.table.columns.join(',')}\n`);
      count = await repo.stream(db, step.table, step.where, BATCH, async (batch) => {
        const shown = step.table.table === 'core.audit_logs' ? await this.openAudit(db, batch, step.allowSubject, step.personId) : batch;
        const text = row.kind === 'person'
          ? shown.map((r, i) => `${count + i === 0 ? '\n' : ',\n'}${JSON.stringify(r)}`).join('')
          : shown.map((r) => `${step.table.columns.map((c) => csvCell(r[c])).join(',')}\n`).join('');
        count += shown.length;
        await put(text);
      });
      if (row.kind === 'person') await put(count ? '\n]\n' : ']\n');
      entry.end();
      rows += count;
      done++;
      readme.push(`| ${name} | ${step.describes} | ${count} |`);
      await this.progress(row.id, Math.floor((done * 100) / (plan.length + 1)), done, plan.length, rows);
    }
    zip.addBuffer(Buffer.from(this.readme(row, readme), 'utf8'), 'README.md');
    zip.end();
    await Promise.race([written, zipFailed]);
    return rows;
  }

  /**
   * Progress is committed on its own (the export's transaction commits only at the end), in a privileged transaction of
   * its own: the export's is on the exports' pool (snapshot), so this never waits for a second privileged connection.
   */
  private progress(id: string, progress: number, tablesDone: number, tablesTotal: number, rowsWritten: number): Promise<void> {
    return this.privileged.run('privacy.export', (db) => repo.setProgress(db, id, { progress, tablesDone, tablesTotal, rowsWritten }));
  }

  /** The person's tables: every catalog table that locates them (by user id, e-mail or personal organization). */
  private async personPlan(db: Db, userId: string): Promise<PlanStep[]> {
    // only addresses they proved: an invitation to an address merely typed in is another organization's record of someone else
    const emails = await erasureRepository.provenEmails(db, userId);
    // what their erasure would delete with the organizations that go with them (their knowledge base) is theirs to take
    const erasedOrgIds = organizationsErasedWith(await erasureRepository.memberships(db, userId));
    // where their erasure would look for rows that name them (value scans bounded to their organizations)
    const orgIds = await erasureRepository.organizationsOf(db, userId, emails);
    const own = new Set<string>([userSubject(userId), ...emails.map(emailSubject)]);
    const entries = PERSONAL_DATA_CATALOG.filter((t) => t.exported !== false)
      .map((t) => ({ t, where: locate(t, { userId, emails, orgIds, erasedOrgIds }, false) }))
      .filter((x): x is { t: typeof x.t; where: { sql: string; values: unknown[] } } => !!x.where && x.t.person.kind !== 'value-scan');
    const tables = await repo.columnsOf(db, entries.map((e) => e.t.table));
    const byName = new Map(tables.map((t) => [t.table, t]));
    return entries.filter((e) => byName.has(e.t.table)).map((e) => ({
      table: byName.get(e.t.table)!, where: e.where, describes: e.t.describes, allowSubject: (s: string) => own.has(s), personId: userId,
    }));
  }

  /** Every table with the organization's org_id. */
  private async organizationPlan(db: Db, orgId: string): Promise<PlanStep[]> {
    const names = await repo.organizationTables(db, OUR_SCHEMAS, ORGANIZATION_EXPORT_SKIPS);
    const tables = await repo.columnsOf(db, names);
    return tables.map((t) => ({
      table: t, where: { sql: 'x.org_id = $1::uuid', values: [orgId] }, describes: `the organization's rows of ${fileBase(t.table)}`, allowSubject: () => true,
    }));
  }

  /**
   * Audit entries as they read (sealed fields opened); in a person's export only their own person's fields, and the IP
   * address of the entries they did not act in (an admin changing their role) withheld: it is the actor's.
   */
  private async openAudit(db: Db, rows: Record<string, unknown>[], allow: (subject: string) => boolean, personId?: string): Promise<Record<string, unknown>[]> {
    const keys = await this.sealer.openKeys(db, this.sealer.keyIds(rows.flatMap((r) => [r.before, r.after])));
    return rows.map((r) => {
      const facts = { entityType: String(r.entity_type), entityId: (r.entity_id as string | null) ?? null };
      const ip = personId !== undefined && r.actor_id !== personId && r.ip != null ? WITHHELD : r.ip;
      return { ...r, ip, before: this.sealer.open(r.before, String(r.org_id), facts, keys, allow), after: this.sealer.open(r.after, String(r.org_id), facts, keys, allow) };
    });
  }

  private readme(row: DataExportRow, lines: string[]): string {
    const what = row.kind === 'person'
      ? 'The data OmniZen holds about you, one JSON file per table (an array of rows); audit entries show other people\'s data '
        + '(and the IP address of another person acting) as withheld.\n\nNot in this archive: secrets, password and token hashes; '
        + 'records of organizations that you made or that name you in free text (journal entries, invoices, bills you entered, '
        + 'memos: the organization\'s own export holds them); notices and e-mails to other people that mention you; jobs and '
        + 'webhook messages in flight; a pending Stripe checkout request (kept at most 24 hours).'
      : 'The organization\'s data, one CSV file per table (a header line, then one line per row; JSON values as JSON text). '
        + 'Secrets and token hashes are never exported.';
    return `# OmniZen data export ${row.id}\n\n${what}\n\nCreated: ${new Date(this.clock.now()).toISOString()}\n\n| file | holds | rows |\n|---|---|---|\n${lines.join('\n')}\n`;
  }

  /** `linkable`: whether its requester may still take it (requesterMayOpen), as the download checks */
  private toDto(row: DataExportRow, linkable = true): DataExportDto {
    // a row naming another archive than its own (forged) never gets a link
    const ready = row.status === 'ready' && row.fileName === archiveName(row.id) && !!row.expiresAt && row.expiresAt.getTime() > this.clock.now();
    return {
      id: row.id,
      kind: row.kind,
      status: row.status === 'ready' && !ready ? 'expired' : row.status,
      progress: row.progress,
      tablesDone: row.tablesDone,
      tablesTotal: row.tablesTotal,
      rowsWritten: Number(row.rowsWritten),
      sizeBytes: row.sizeBytes === null ? null : Number(row.sizeBytes),
      createdAt: row.createdAt.toISOString(),
      completedAt: row.completedAt?.toISOString() ?? null,
      expiresAt: row.expiresAt?.toISOString() ?? null,
      downloadUrl: ready && linkable ? `/v1/data-exports/download?token=${this.token(row.id, row.expiresAt!.getTime())}` : null,
      error: row.status === 'failed' ? 'the export failed; ask for a new one' : null,
    };
  }

  private token(id: string, expiresAtMs: number): string {
    const body = `${id}.${expiresAtMs}`;
    return `${body}.${createHmac('sha256', linkKey(this.config)).update(body).digest('base64url')}`;
  }

  /** The export id of a well-signed, unexpired token. */
  private verifyToken(token: string): string {
    const m = /^([0-9a-f-]{36})\.(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) throw PrivacyErrors.error('privacy.export_link_invalid', 'this download link is not valid');
    const expected = Buffer.from(createHmac('sha256', linkKey(this.config)).update(`${m[1]}.${m[2]}`).digest('base64url'));
    const given = Buffer.from(m[3]);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw PrivacyErrors.error('privacy.export_link_invalid', 'this download link is not valid');
    if (Number(m[2]) <= this.clock.now()) throw PrivacyErrors.error('privacy.export_link_expired', 'this download link has expired: ask for a new export');
    return m[1];
  }
}

interface PlanStep {
  table: ExportTable;
  where: { sql: string; values: unknown[] };
  describes: string;
  allowSubject: (subject: string) => boolean;
  /** a person's export: the person (whose audit entries show their own IP address only) */
  personId?: string;
}
