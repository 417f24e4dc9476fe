import { AsyncLocalStorage } from 'node:async_hooks';
import { readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { dataExportRepository as repo } from '../../src/modules/privacy/data-export.repository.js';
import { DATA_EXPORT_JOB, DataExportService } from '../../src/modules/privacy/data-export.service.js';
import { PrivilegedDatabase } from '../../src/platform/database/privileged.service.js';
import { DatabaseUnavailableError } from '../../src/platform/errors/database-errors.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';

/** The privileged pool's connections (PrivilegedDatabase: max 5). */
const PRIVILEGED_POOL = 5;
/** Exports one process writes at once: well below the privileged pool's size. */
const AT_ONCE = 2;

/**
 * An export held one privileged connection for its whole snapshot and took a second one, from the same pool of 5, for each
 * progress update: 5 exports at once (Bull's worker runs 16 jobs) each held one and waited for a second until the connect
 * timeout; a login meanwhile waited as long, and exports ended failed for good. Now a process writes AT_ONCE exports at once
 * (the others' jobs are written again for later, holding nothing), each snapshot on the exports' own pool, and no privileged transaction is
 * ever opened inside another; a failure that may pass (no connection in time) is retried, not final.
 */
describe('data exports: many at once, and the privileged pool', () => {
  let t: TestApp;
  let owner: TestUser;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-pool-'));

  beforeAll(async () => {
    // a short connect timeout: a pool jammed as it was fails fast rather than after the default minute
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: '', DATABASE_CONNECT_TIMEOUT_MS: '3000' });
    owner = await registerUser(t, 'poolowner');
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const requestExports = async (n: number, tag: string) => {
    const made: { id: string; orgId: string }[] = [];
    for (let i = 0; i < n; i++) {
      const orgId = await createOrg(t, owner, `${tag} ${i}`);
      made.push({ id: (await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(202)).body.id, orgId });
    }
    return made;
  };
  /** The export's job as the relay hands it on: its outbox row's id (a run records it done, or passes its turn on by it). */
  const job = async (x: { id: string; orgId: string }) => {
    const { rows: [row] } = await t.db.admin.query(`SELECT id::text FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = $2 ORDER BY id LIMIT 1`, [DATA_EXPORT_JOB, x.id]);
    return { id: row.id as string, orgId: x.orgId, topic: DATA_EXPORT_JOB, payload: { exportId: x.id } };
  };

  it(`${PRIVILEGED_POOL + 1} exports at once all complete, ${AT_ONCE} at most writing, never two privileged connections at once; a login proceeds meanwhile`, async () => {
    const exports = await requestExports(PRIVILEGED_POOL + 1, 'Pool');
    const svc = t.app.get(DataExportService);

    // a privileged transaction opened inside another (the same async context) holds two of the pool's connections
    const privileged = t.app.get(PrivilegedDatabase);
    const inside = new AsyncLocalStorage<true>();
    let nested = 0;
    const run = privileged.run.bind(privileged);
    jest.spyOn(privileged, 'run').mockImplementation(((path, work) => {
      if (inside.getStore()) nested++;
      return run(path, (db) => inside.run(true, () => work(db)));
    }) as PrivilegedDatabase['run']);

    // exports between their start and their end (finished or failed)
    let active = 0;
    let mostActive = 0;
    const start = repo.start.bind(repo);
    jest.spyOn(repo, 'start').mockImplementation(async (...args) => {
      const started = await start(...args);
      if (started) mostActive = Math.max(mostActive, ++active);
      return started;
    });
    const finish = repo.finish.bind(repo);
    jest.spyOn(repo, 'finish').mockImplementation(async (...args) => {
      active--;
      return finish(...args);
    });
    const fail = repo.fail.bind(repo);
    jest.spyOn(repo, 'fail').mockImplementation(async (...args) => {
      active--;
      return fail(...args);
    });

    // the exports writing hold on at their first read, in their snapshots, until the login below has answered
    let open = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const allReached = new Promise<'reached'>((r) => (reached = () => r('reached')));
    const snapshots = new WeakSet<object>();
    let atGate = 0;
    const stream = repo.stream.bind(repo);
    jest.spyOn(repo, 'stream').mockImplementation(async (db, ...rest) => {
      if (!open && !snapshots.has(db)) {
        snapshots.add(db);
        if (++atGate === AT_ONCE) reached();
        await gate;
      }
      return stream(db, ...rest);
    });

    const jobs = await Promise.all(exports.map(job));
    const runs = jobs.map((j) => svc.run(j).then(() => 'done', (e: Error) => `failed: ${e.message}`));
    const settled = Promise.all(runs).then(() => 'settled' as const);
    expect(await Promise.race([allReached, settled])).toBe('reached');

    // the exports writing hold AT_ONCE transactions of the database, and nothing else is in one
    const { rows: [inTransaction] } = await t.db.admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()`);
    expect(inTransaction.n).toBe(AT_ONCE);

    // a password login takes a privileged connection meanwhile
    const login = await t.http.post('/v1/auth/login').send({ email: owner.email, password: 'correct horse battery' });
    expect(login.status).toBe(200);
    expect(login.body).toMatchObject({ accessToken: expect.any(String) });

    // the others did not wait: their jobs ended at once, each written again (due a little later) for its turn
    const ids = exports.map((x) => x.id);
    const requeued = async () => (await t.db.admin.query(
      `SELECT count(*)::int AS n FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = ANY($2) AND processed_at IS NULL AND payload->>'waits' = '1'`,
      [DATA_EXPORT_JOB, ids])).rows[0].n;
    expect(await requeued()).toBe(exports.length - AT_ONCE);

    open = true;
    release();
    expect(await Promise.all(runs)).toEqual(exports.map(() => 'done'));
    // their turn: the jobs written again made due (no waiting on the clock) and run
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND payload->>'exportId' = ANY($2) AND processed_at IS NULL`, [DATA_EXPORT_JOB, ids]);
    await t.app.get(OutboxRelay).drain();
    expect(nested).toBe(0);
    expect(mostActive).toBe(AT_ONCE);
    const { rows } = await t.db.admin.query(`SELECT id::text, status, file_name, error FROM core.data_exports WHERE id = ANY($1) ORDER BY id`, [exports.map((x) => x.id)]);
    expect(rows).toEqual(exports.map((x) => x.id).sort().map((id) => ({ id, status: 'ready', file_name: `${id}.zip`, error: null })));
    expect(readdirSync(dir).filter((f) => exports.some((x) => f.startsWith(x.id))).sort()).toEqual(exports.map((x) => `${x.id}.zip`).sort());
  });

  it('an export interrupted by a failure that may pass (no database connection in time) is queued again and its job retried, not failed for good', async () => {
    const [x] = await requestExports(1, 'Transient');
    const setProgress = repo.setProgress.bind(repo);
    let thrown = 0;
    jest.spyOn(repo, 'setProgress').mockImplementation(async (...args) => {
      if (args[2].tablesDone === 1 && thrown++ === 0) throw new DatabaseUnavailableError(new Error('timeout exceeded when trying to connect (simulated)'));
      return setProgress(...args);
    });

    await t.app.get(OutboxRelay).drain();
    expect(thrown).toBe(1);
    // the export waits for its job's next try; the job is neither done nor dead, its error kept
    expect((await t.db.admin.query(`SELECT status, progress, file_name, error FROM core.data_exports WHERE id = $1`, [x.id])).rows)
      .toEqual([{ status: 'queued', progress: 0, file_name: null, error: null }]);
    expect((await t.db.admin.query(
      `SELECT processed_at IS NOT NULL AS processed, dead_at IS NOT NULL AS dead, tries, last_error FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = $2`,
      [DATA_EXPORT_JOB, x.id])).rows).toEqual([{ processed: false, dead: false, tries: 1, last_error: expect.stringContaining('the database is unavailable') }]);
    expect(readdirSync(dir).filter((f) => f.startsWith(x.id))).toEqual([]);
    const status = (await t.http.get(`/v1/orgs/${x.orgId}/data-exports/${x.id}`).set(owner.auth).expect(200)).body;
    expect(status).toMatchObject({ id: x.id, status: 'queued', downloadUrl: null, error: null });

    // its next try (the job made due now) completes it
    await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND payload->>'exportId' = $2`, [DATA_EXPORT_JOB, x.id]);
    await t.app.get(OutboxRelay).drain();
    expect((await t.db.admin.query(`SELECT status, file_name FROM core.data_exports WHERE id = $1`, [x.id])).rows).toEqual([{ status: 'ready', file_name: `${x.id}.zip` }]);
    expect((await t.db.admin.query(`SELECT processed_at IS NOT NULL AS processed FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = $2`,
      [DATA_EXPORT_JOB, x.id])).rows).toEqual([{ processed: true }]);
  });
});
