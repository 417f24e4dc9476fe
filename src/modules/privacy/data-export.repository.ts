import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import { SECRET_COLUMN_NAME } from './personal-data.catalog.js';
import { organizationDeleted } from '../organizations/organization.repository.js';

export type DataExportKind = 'person' | 'organization';
export type DataExportStatus = 'queued' | 'running' | 'ready' | 'failed' | 'expired';

export interface DataExportRow {
  id: string;
  kind: DataExportKind;
  orgId: string;
  userId: string;
  status: DataExportStatus;
  progress: number;
  tablesTotal: number;
  tablesDone: number;
  rowsWritten: bigint;
  fileName: string | null;
  sizeBytes: bigint | null;
  error: string | null;
  createdAt: Date;
  completedAt: Date | null;
  expiresAt: Date | null;
}

const COLUMNS = [
  'id', 'kind', 'org_id as orgId', 'user_id as userId', 'status', 'progress', 'tables_total as tablesTotal', 'tables_done as tablesDone',
  'rows_written as rowsWritten', 'file_name as fileName', 'size_bytes as sizeBytes', 'error', 'created_at as createdAt',
  'completed_at as completedAt', 'expires_at as expiresAt',
] as const;

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/** A table of our schemas as the export reads it: its exported columns (secrets left out). */
export interface ExportTable {
  /** format('%I.%I'): core."User" */
  table: string;
  columns: string[];
}

/** Why an export whose job was given up (dead, none left to run) is failed: failAbandoned. */
export const ABANDONED = 'its job was given up after its last try';

/** The archive of an export in DATA_EXPORT_DIR: named by the export's id, nothing else. */
export const archiveName = (exportId: string) => `${exportId}.zip`;

/** The files of these rows to delete: only an archive named by its own export's id (a row naming another is not its owner). */
const ownFiles = (rows: { id: string; file_name: string | null }[]): string[] =>
  rows.filter((r) => r.file_name === archiveName(r.id)).map((r) => r.file_name!);

/** core.data_exports, and the reads of an export (server-side cursors: a large history streams in batches). */
export const dataExportRepository = {
  async insert(db: Db, e: { kind: DataExportKind; orgId: string; userId: string }): Promise<DataExportRow> {
    const [row] = await db.run(qb.insertInto('core.data_exports').values({ kind: e.kind, org_id: e.orgId, user_id: e.userId }).returning([...COLUMNS]));
    return row as DataExportRow;
  },

  /** An unfinished export of the same kind and requester (one at a time). */
  async unfinished(db: Db, kind: DataExportKind, orgId: string, userId: string): Promise<string | undefined> {
    const [row] = await db.run(qb.selectFrom('core.data_exports').select('id')
      .where('kind', '=', kind).where('org_id', '=', orgId).where('user_id', '=', userId).where('status', 'in', ['queued', 'running']).limit(1));
    return row?.id;
  },

  /**
   * The requester's unfinished export of this kind (as `unfinished`) with no job of it still to run (its job dead, or its
   * dead row since purged by the retention job after RETENTION_OUTBOX_DAYS): failed, with the reason; it would otherwise
   * stay queued for ever and refuse every new request. An export in progress always has a pending job row: its first is
   * written with it, one without a turn writes its next in the transaction that records it done (passTurn), one that
   * failed in a way that may pass stays pending for its next try. Privileged (core.outbox). Answers the ids it failed
   * (with the reason ABANDONED), for their audit.
   */
  async failAbandoned(db: Db, topic: string, kind: DataExportKind, orgId: string, userId: string): Promise<string[]> {
    const rows = await db.$queryRaw<{ id: string }[]>`UPDATE core.data_exports d SET status = 'failed', error = ${ABANDONED}
      WHERE d.kind = ${kind} AND d.org_id = ${orgId}::uuid AND d.user_id = ${userId} AND d.status IN ('queued', 'running')
        AND NOT EXISTS (SELECT 1 FROM core.outbox o WHERE o.org_id = d.org_id AND o.topic = ${topic} AND o.payload->>'exportId' = d.id::text AND o.processed_at IS NULL)
      RETURNING d.id::text AS id`;
    return rows.map((r) => r.id);
  },

  async get(db: Db, id: string): Promise<DataExportRow | undefined> {
    const [row] = await db.run(qb.selectFrom('core.data_exports').select([...COLUMNS]).where('id', '=', id));
    return row as DataExportRow | undefined;
  },

  /**
   * Queued, or running (an interrupted job starting over). False otherwise: expired meanwhile (its person was erased), or
   * failed (a failure is final: a duplicate the migration 20270210870100 failed is never made).
   */
  async start(db: Db, id: string, now: Date): Promise<boolean> {
    const rows = await db.run(qb.updateTable('core.data_exports')
      .set({ status: 'running', progress: 0, tables_total: 0, tables_done: 0, rows_written: 0n, started_at: now, error: null })
      .where('id', '=', id).where('status', 'in', ['queued', 'running']).returning('id'));
    return rows.length > 0;
  },

  async setProgress(db: Db, id: string, p: { progress: number; tablesDone: number; tablesTotal: number; rowsWritten: number }): Promise<void> {
    await db.run(qb.updateTable('core.data_exports')
      .set({ progress: p.progress, tables_done: p.tablesDone, tables_total: p.tablesTotal, rows_written: BigInt(p.rowsWritten) }).where('id', '=', id));
  },

  /** False when the export expired while it ran (its person was erased): it does not become ready. */
  async finish(db: Db, id: string, f: { fileName: string; sizeBytes: number; rowsWritten: number; completedAt: Date; expiresAt: Date }): Promise<boolean> {
    const rows = await db.run(qb.updateTable('core.data_exports').set({
      status: 'ready', progress: 100, file_name: f.fileName, size_bytes: BigInt(f.sizeBytes), rows_written: BigInt(f.rowsWritten),
      completed_at: f.completedAt, expires_at: f.expiresAt,
    }).where('id', '=', id).where('status', '=', 'running').returning('id'));
    return rows.length > 0;
  },

  /**
   * A person's erasure: every export they asked for (theirs and their organizations': an organization's archive holds their
   * e-mail address in its audit entries, opened at export time) and every export of the organizations it deletes, queued,
   * running, ready or failed, expire at once; answers the files to delete.
   */
  async expireOfPerson(db: Db, userId: string, deletedOrgIds: string[]): Promise<{ count: number; files: string[] }> {
    const rows = await db.run(qb.updateTable('core.data_exports').set({ status: 'expired' })
      .where((eb) => eb.or([eb('user_id', '=', userId), ...(deletedOrgIds.length ? [eb('org_id', 'in', deletedOrgIds)] : [])]))
      .where('status', '<>', 'expired').returning(['id', 'file_name']));
    return { count: rows.length, files: ownFiles(rows) };
  },

  /** organizations' helper: a deleted organization's exports are no longer served */
  organizationDeleted,

  /**
   * Whether the person who asked for an export may still take it: a person's, while their account exists; an
   * organization's, while they are still its owner (one who left, was removed or demoted has lost access to its data).
   */
  async requesterMayOpen(db: Db, e: { kind: DataExportKind; orgId: string; userId: string }): Promise<boolean> {
    const rows = e.kind === 'person'
      ? await db.run(qb.selectFrom('core.User').select('id').where('id', '=', e.userId))
      : await db.run(qb.selectFrom('core.memberships').select('user_id').where('org_id', '=', e.orgId).where('user_id', '=', e.userId).where('role', '=', 'owner'));
    return rows.length > 0;
  },

  /** A running export interrupted by a failure that may pass: queued again for its job's next try (start resets its progress). */
  async requeue(db: Db, id: string): Promise<boolean> {
    const rows = await db.run(qb.updateTable('core.data_exports').set({ status: 'queued', progress: 0, tables_done: 0, rows_written: 0n })
      .where('id', '=', id).where('status', '=', 'running').returning('id'));
    return rows.length > 0;
  },

  /**
   * Queued or running only: a run that lost to another of the same export (finished ready, or expired meanwhile) never
   * turns its outcome into a failure. Answers whether it failed it.
   */
  async fail(db: Db, id: string, error: string): Promise<boolean> {
    const rows = await db.run(qb.updateTable('core.data_exports').set({ status: 'failed', error: error.slice(0, 1000) })
      .where('id', '=', id).where('status', 'in', ['queued', 'running']).returning('id'));
    return rows.length > 0;
  },

  /**
   * Ready exports whose link has expired: the retention job deletes their files and marks them expired. Answers the
   * files and the organization of each export expired.
   */
  async expire(db: Db, now: Date): Promise<{ files: string[]; orgIds: string[] }> {
    const rows = await db.run(qb.updateTable('core.data_exports').set({ status: 'expired' })
      .where('status', '=', 'ready').where('expires_at', '<=', now).returning(['id', 'file_name', 'org_id']));
    return { files: ownFiles(rows), orgIds: rows.map((r) => r.org_id) };
  },

  /** Of these exports (ids of archives on disk), those failed or expired: their archives are to be deleted. */
  async finishedWithout(db: Db, ids: string[]): Promise<string[]> {
    if (!ids.length) return [];
    const rows = await db.run(qb.selectFrom('core.data_exports').select('id').where('id', 'in', ids).where('status', 'in', ['failed', 'expired']));
    return rows.map((r) => r.id);
  },

  /** The exported columns of these tables (from pg_catalog, in column order), secrets left out. */
  async columnsOf(db: Db, tables: string[]): Promise<ExportTable[]> {
    const rows = await db.$queryRaw<{ table: string; columns: string[] }[]>`
      SELECT format('%I.%I', n.nspname, c.relname) AS table, array_agg(a.attname::text ORDER BY a.attnum) AS columns
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE format('%I.%I', n.nspname, c.relname) = ANY(${tables}::text[])
      GROUP BY 1`;
    const byName = new Map(rows.map((r) => [r.table, r.columns.filter((col) => !SECRET_COLUMN_NAME.test(col))]));
    return tables.filter((t) => byName.has(t)).map((t) => ({ table: t, columns: byName.get(t)! }));
  },

  /** Every table of our schemas with an org_id column (an organization's data), partitions read through their parent. */
  async organizationTables(db: Db, schemas: readonly string[], skip: readonly string[]): Promise<string[]> {
    const rows = await db.$queryRaw<{ table: string }[]>`
      SELECT format('%I.%I', n.nspname, c.relname) AS table
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(${[...schemas]}::text[])
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY 1`;
    return rows.map((r) => r.table).filter((t) => !skip.includes(t));
  },

  /**
   * Reads the rows of `t` matching `where` ($1 = value) in batches through a cursor in the caller's transaction, each
   * row a JSON object of the exported columns; `onBatch` is awaited before the next batch is fetched.
   */
  async stream(db: Db, t: ExportTable, where: { sql: string; values: unknown[] }, batchSize: number,
    onBatch: (rows: Record<string, unknown>[]) => Promise<void>): Promise<number> {
    const object = `jsonb_build_object(${t.columns.map((c) => `'${c.replace(/'/g, "''")}', x.${quote(c)}`).join(', ')})`;
    // jsonb_build_object takes at most 100 arguments: wide tables are built from slices
    const parts: string[] = [];
    for (let i = 0; i < t.columns.length; i += 50) {
      parts.push(`jsonb_build_object(${t.columns.slice(i, i + 50).map((c) => `'${c.replace(/'/g, "''")}', x.${quote(c)}`).join(', ')})`);
    }
    const row = t.columns.length <= 50 ? object : parts.join(' || ');
    await db.$executeRawUnsafe(`DECLARE export_rows NO SCROLL CURSOR FOR SELECT ${row} AS r FROM ${t.table} x WHERE ${where.sql}`, ...where.values);
    let total = 0;
    try {
      for (;;) {
        const batch = await db.$queryRawUnsafe<{ r: Record<string, unknown> }[]>(`FETCH ${Number(batchSize)} FROM export_rows`);
        if (!batch.length) break;
        total += batch.length;
        await onBatch(batch.map((b) => b.r));
        if (batch.length < batchSize) break;
      }
    } finally {
      await db.$executeRawUnsafe('CLOSE export_rows');
    }
    return total;
  },
};
