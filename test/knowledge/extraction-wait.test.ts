import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CallTimer } from '../../src/platform/clock/clock.js';
import { EXTRACTION_BUSY_RETRY_SECONDS, PdfTextExtractor } from '../../src/modules/knowledge/pdf-text-extraction.js';
import { onEnterprisePlan, orgWithRoles, type OrgWithRoles } from '../support/factories.js';
import { until } from '../support/throwaway-servers.js';
import { makePdf, startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/** The extractor's seam the tests hold: the worker's start (a held extraction). */
interface ExtractorSeams {
  runWorker(name: string, input: unknown, limits: unknown): Promise<unknown>;
}

/** How long an upload waits for a slot at most, in this file: not the worker's 30 s, so the two timers are told apart. */
const MAX_WAIT_MS = 12_345;

/**
 * An upload waiting for one of the extraction slots (its file in memory, its client connected) waited without a time
 * limit, and went on waiting after its client had gone. Now it waits at most KNOWLEDGE_EXTRACTION_MAX_WAIT_MS (on the
 * injected CallTimer, fired here by the test), then is a 503 knowledge.extraction_busy with Retry-After; and it leaves
 * the queue as soon as its client disconnects.
 */
describe('knowledge: an upload waits for an extraction slot a bounded time, and not after its client has gone', () => {
  let t: KnowledgeApp;
  let org: OrgWithRoles;
  let collection: string;
  let extractor: PdfTextExtractor;
  /** the CallTimer's timers started with MAX_WAIT_MS: fire() runs one as if the time had passed; stopped once cancelled */
  let waits: { fire: () => void; stopped: boolean }[];

  const url = (p: string) => `/v1/orgs/${org.orgId}/knowledge/${p}`;
  const upload = (name: string) => t.http.post(url(`collections/${collection}/documents`)).set(org.users.member.auth)
    .attach('file', makePdf([`The text of ${name}.`]), { filename: name, contentType: 'application/pdf' }).then((r) => r);
  const titled = async (title: string) => (await t.db.admin.query(
    `SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1 AND title = $2)::int AS documents,
            (SELECT count(*) FROM ai.knowledge_versions WHERE org_id = $1 AND filename = $2)::int AS versions`, [org.orgId, title])).rows[0];

  /** Holds every extraction's worker until release(): both slots stay taken, later uploads wait. */
  const holdExtractions = () => {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => { open = resolve; });
    let started = 0;
    jest.spyOn(extractor as unknown as ExtractorSeams, 'runWorker').mockImplementation(async () => {
      started++;
      await opened;
      return { text: 'Extracted text.' };
    });
    return { started: () => started, release: () => open() };
  };

  beforeAll(async () => {
    t = await startKnowledgeApp('default', { KNOWLEDGE_EXTRACTION_MAX_WAIT_MS: String(MAX_WAIT_MS) });
    org = await orgWithRoles(t, 'Waiting Ltd');
    await onEnterprisePlan(t, org.orgId);
    collection = (await t.http.post(`/v1/orgs/${org.orgId}/knowledge/collections`).set(org.users.owner.auth)
      .send({ name: 'Handbook', readRoles: ['member'] }).expect(201)).body.id;
    extractor = t.app.get(PdfTextExtractor);
  });
  beforeEach(() => {
    waits = [];
    const timer = t.app.get(CallTimer);
    const start = timer.start.bind(timer);
    jest.spyOn(timer, 'start').mockImplementation((ms: number, expire: () => void) => {
      if (ms !== MAX_WAIT_MS) return start(ms, expire);
      const wait = { fire: expire, stopped: false };
      waits.push(wait);
      return () => { wait.stopped = true; };
    });
  });
  afterEach(() => { jest.restoreAllMocks(); });
  afterAll(() => t?.close());

  it('is a 503 knowledge.extraction_busy with Retry-After once it has waited KNOWLEDGE_EXTRACTION_MAX_WAIT_MS, nothing stored; a waiter that gets a slot in time goes on', async () => {
    expect(extractor.limits).toMatchObject({ concurrency: 2, maxWaitMs: MAX_WAIT_MS });
    const hold = holdExtractions();
    try {
      const running = [upload('running-1.pdf'), upload('running-2.pdf')];
      await until('both slots are taken', () => hold.started() === 2);
      const late = upload('late.pdf');
      await until('one upload waits for a slot', () => extractor.queued() === 1);
      const patient = upload('patient.pdf');
      await until('two uploads wait for a slot', () => extractor.queued() === 2);
      expect(waits).toHaveLength(2);

      // the first waiter's time is up: it leaves the queue and is refused
      waits[0].fire();
      const refused = await late;
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe(String(EXTRACTION_BUSY_RETRY_SECONDS));
      expect(refused.body.error).toEqual({
        code: 'knowledge.extraction_busy',
        message: `no extraction slot came free within ${MAX_WAIT_MS / 1000} s: the server is extracting the text of other files; retry in ${EXTRACTION_BUSY_RETRY_SECONDS} s`,
        details: { maxWaitMs: MAX_WAIT_MS },
      });
      expect(extractor.queued()).toBe(1);

      // the second gets a slot when one frees: its timer is stopped, it is stored
      hold.release();
      for (const res of [...running, patient]) expect((await res).status).toBe(201);
      expect(waits[1].stopped).toBe(true);
    } finally {
      hold.release();
    }
    expect(extractor.queued()).toBe(0);
    expect(await titled('late.pdf')).toEqual({ documents: 0, versions: 0 });
    expect(await titled('patient.pdf')).toEqual({ documents: 1, versions: 1 });
  });

  it('leaves the queue as soon as its client disconnects: no slot goes to it, nothing stored', async () => {
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const hold = holdExtractions();
    try {
      const running = [upload('busy-1.pdf'), upload('busy-2.pdf')];
      await until('both slots are taken', () => hold.started() === 2);

      const boundary = 'omnizen-gone-boundary';
      const body = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="gone.pdf"\r\nContent-Type: application/pdf\r\n\r\n`),
        makePdf(['The text of gone.pdf.']), Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const req = httpRequest({
        host: '127.0.0.1', port, method: 'POST', path: url(`collections/${collection}/documents`),
        headers: { ...org.users.member.auth, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) },
      });
      req.on('error', () => undefined); // destroyed below on purpose
      req.end(body);
      await until('the upload waits for a slot', () => extractor.queued() === 1);
      expect(waits).toHaveLength(1);

      req.destroy();
      await until('the disconnected upload has left the queue', () => extractor.queued() === 0);
      expect(waits[0].stopped).toBe(true);

      hold.release();
      for (const res of running) expect((await res).status).toBe(201);
      // both slots were released by the two running ones, none was handed to the gone upload
      expect(hold.started()).toBe(2);
    } finally {
      hold.release();
    }
    expect(await titled('gone.pdf')).toEqual({ documents: 0, versions: 0 });
    expect(await titled('busy-1.pdf')).toEqual({ documents: 1, versions: 1 });
  });
});
