import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { Job as BullJob, Queue } from 'bull';
import { dataExportRepository as repo } from '../../src/modules/privacy/data-export.repository.js';
import { DATA_EXPORT_JOB, EXPORTS_AT_ONCE } from '../../src/modules/privacy/data-export.service.js';
import { DatabaseService } from '../../src/platform/database/database.service.js';
import { JOBS_WORKER_CONCURRENCY } from '../../src/platform/queue/jobs.processor.js';
import { enqueue, JobRegistry, type Job } from '../../src/platform/queue/jobs.js';
import { JOBS_QUEUE_TOKEN, OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { bounded, until, WAIT_BOUND_MS } from '../support/throwaway-servers.js';

const PING = 'test.export_turns.ping';

/**
 * Exports waiting their turn (EXPORTS_AT_ONCE write at once in a process) waited in memory, each holding one of Bull's
 * worker slots (JOBS_WORKER_CONCURRENCY, 16): one person asking for 16 exports (one for each organization they own,
 * free to create) filled every slot, and no other job (mail, webhooks, domain events, billing) ran on the process until
 * the exports were done. Now a job that finds no turn free writes its export's job again, due a little later, and ends.
 */
describe('data exports waiting their turn hold no worker slot (Bull)', () => {
  let t: TestApp;
  let owner: TestUser;
  const dir = mkdtempSync(join(tmpdir(), 'omnizen-exports-turns-'));

  beforeAll(async () => {
    t = await createTestApp({ DATA_EXPORT_DIR: dir, REDIS_URL: process.env.REDIS_URL });
    owner = await registerUser(t, 'turnsowner');
  }, 120_000);
  afterEach(() => {
    jest.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${JOBS_WORKER_CONCURRENCY} exports of one person and another topic's job: that job runs while ${EXPORTS_AT_ONCE} exports are held writing; every export ends ready`, async () => {
    const exports: { id: string; orgId: string }[] = [];
    for (let i = 0; i < JOBS_WORKER_CONCURRENCY; i++) {
      const orgId = await createOrg(t, owner, `Turns ${i}`);
      exports.push({ id: (await t.http.post(`/v1/orgs/${orgId}/data-export`).set(owner.auth).expect(202)).body.id, orgId });
    }
    const ids = exports.map((x) => x.id);

    // the exports writing hold on at their first read, in their snapshots, until released
    let open = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const snapshots = new WeakSet<object>();
    let atGate = 0;
    const stream = repo.stream.bind(repo);
    jest.spyOn(repo, 'stream').mockImplementation(async (db, ...rest) => {
      if (!open && !snapshots.has(db)) {
        snapshots.add(db);
        atGate++;
        await gate;
      }
      return stream(db, ...rest);
    });

    let pinged!: (job: Job) => void;
    const pingRan = new Promise<Job>((r) => (pinged = r));
    t.app.get(JobRegistry).register(PING, async (job) => pinged(job));
    const queue = t.app.get<Queue>(JOBS_QUEUE_TOKEN);
    let pingCompleted!: () => void;
    const pingDone = new Promise<void>((r) => (pingCompleted = r));
    const onCompleted = (job: BullJob<Job>) => {
      if (job.data.topic === PING) pingCompleted();
    };
    queue.on('completed', onCompleted);
    const relay = t.app.get(OutboxRelay);

    try {
      await relay.drain();
      await until(`${EXPORTS_AT_ONCE} exports writing`, () => atGate === EXPORTS_AT_ONCE, 600);
      // another topic's job, while the two exports still write
      await t.app.get(DatabaseService).tenant({ kind: 'service', name: 'test' } as never, exports[0].orgId, { requestId: 'turns' }, (tx) => enqueue(tx, PING, { n: 1 }));
      await relay.drain();
      const ping = await bounded(pingRan, WAIT_BOUND_MS, () => `${PING} never ran: every worker slot held (${atGate} exports at the gate)`);
      await bounded(pingDone, WAIT_BOUND_MS, () => `${PING} never completed`);
      // the others have given their slots back: each export's job written again, due later, the one handed over done
      await until('the exports without a turn written again', async () => (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = ANY($2) AND processed_at IS NULL AND (payload->>'waits')::int >= 1`,
        [DATA_EXPORT_JOB, ids])).rows[0].n === ids.length - EXPORTS_AT_ONCE, 600);

      expect(ping).toMatchObject({ topic: PING, orgId: exports[0].orgId, payload: { n: 1 } });
      expect(atGate).toBe(EXPORTS_AT_ONCE);
      expect(open).toBe(false);
      const statuses = (await t.db.admin.query(`SELECT status, count(*)::int AS n FROM core.data_exports WHERE id = ANY($1) GROUP BY status ORDER BY status`, [ids])).rows;
      expect(statuses).toEqual([
        { status: 'queued', n: JOBS_WORKER_CONCURRENCY - EXPORTS_AT_ONCE },
        { status: 'running', n: EXPORTS_AT_ONCE },
      ]);
      expect((await t.db.admin.query(`SELECT processed_at IS NOT NULL AS done FROM core.outbox WHERE topic = $1 AND org_id = $2`, [PING, exports[0].orgId])).rows)
        .toEqual([{ done: true }]);
    } finally {
      open = true;
      release();
      queue.off('completed', onCompleted);
    }

    // the rest get their turns: the jobs written again made due (no waiting on the clock) and relayed, until all are ready
    await until('every export ready', async () => {
      const { rows: [r] } = await t.db.admin.query(`SELECT count(*) FILTER (WHERE status = 'ready')::int AS ready FROM core.data_exports WHERE id = ANY($1)`, [ids]);
      if (r.ready === ids.length) return true;
      await t.db.admin.query(`UPDATE core.outbox SET available_at = now() WHERE topic = $1 AND payload->>'exportId' = ANY($2) AND processed_at IS NULL`, [DATA_EXPORT_JOB, ids]);
      await relay.drain();
      return false;
    }, 600, 100);
    const { rows } = await t.db.admin.query(`SELECT id::text, status, file_name, error FROM core.data_exports WHERE id = ANY($1) ORDER BY id`, [ids]);
    expect(rows).toEqual([...ids].sort().map((id) => ({ id, status: 'ready', file_name: `${id}.zip`, error: null })));
    expect(readdirSync(dir).filter((f) => ids.some((id) => f.startsWith(id))).sort()).toEqual(ids.map((id) => `${id}.zip`).sort());
    // no job of theirs left to run (the last ones recorded done once their handlers returned), none dead
    const jobs = async () => (await t.db.admin.query(`SELECT count(*) FILTER (WHERE processed_at IS NULL)::int AS pending, count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead
      FROM core.outbox WHERE topic = $1 AND payload->>'exportId' = ANY($2)`, [DATA_EXPORT_JOB, ids])).rows[0];
    await until('the exports\' jobs recorded done', async () => (await jobs()).pending === 0);
    expect(await jobs()).toEqual({ pending: 0, dead: 0 });
  }, 180_000);
});
