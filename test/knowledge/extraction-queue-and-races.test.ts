import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { knowledgeRepository } from '../../src/modules/knowledge/knowledge.repository.js';
import { EXTRACTION_BUSY_RETRY_SECONDS, PdfTextExtractor } from '../../src/modules/knowledge/pdf-text-extraction.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { makePdf, startKnowledgeApp, type KnowledgeApp } from './knowledge-support.js';

/** The extractor's seams the tests hold: the worker's start (a held extraction) and the wait for a slot (observed). */
interface ExtractorSeams {
  runWorker(name: string, input: unknown, limits: unknown): Promise<unknown>;
  slot(orgId: string): Promise<void>;
}

/** Counts events; `until(n)` resolves once n have happened (no clock). */
function counter() {
  let n = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    get count() { return n; },
    tick() {
      n++;
      for (const w of waiters.filter((x) => x.n <= n)) w.resolve();
    },
    until(k: number): Promise<void> {
      return k <= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n: k, resolve }));
    },
  };
}

/** A promise and its resolve, for a step the test opens when it chooses. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => { open = resolve; });
  return { open, opened };
}

interface Tenant { orgId: string; owner: TestUser; collection: string }

/**
 * Two loose ends of the knowledge base under load and concurrency: the extraction slots' queue (two slots per process;
 * every waiting upload holds its file in memory) had no bound, so uploads could pile up without limit and one member
 * could fill it ahead of every other organization; and a note or upload whose collection was deleted between its check
 * and its insert answered an undeclared 409 conflict.reference instead of the collection's 404.
 */
describe('knowledge: a bounded extraction queue, and documents added to a collection being deleted', () => {
  let t: KnowledgeApp;
  let extractor: PdfTextExtractor;
  let seams: ExtractorSeams;
  let a: Tenant;
  let b: Tenant;
  let x: Tenant;

  const url = (tenant: Tenant, p: string) => `/v1/orgs/${tenant.orgId}/knowledge/${p}`;
  const upload = (tenant: Tenant, name: string, type = 'application/pdf', content: Buffer | string = makePdf([`The text of ${name}.`])) =>
    t.http.post(url(tenant, `collections/${tenant.collection}/documents`)).set(tenant.owner.auth)
      .attach('file', Buffer.from(content), { filename: name, contentType: type });
  /** the request sent now (supertest sends on then), and whether it has been answered yet */
  const send = <R,>(req: PromiseLike<R>) => {
    const sent = { settled: false, res: Promise.resolve(req).then((r) => { sent.settled = true; return r; }) };
    return sent;
  };
  const stored = async (tenant: Tenant) => (await t.db.admin.query(
    `SELECT (SELECT count(*) FROM ai.knowledge_documents WHERE org_id = $1)::int AS documents,
            (SELECT count(*) FROM ai.knowledge_versions WHERE org_id = $1)::int AS versions,
            (SELECT count(*) FROM core.outbox WHERE org_id = $1 AND topic = 'knowledge.index_version')::int AS jobs,
            (SELECT count(*) FROM core.audit_logs WHERE org_id = $1 AND action IN ('knowledge.document_created', 'knowledge.version_added'))::int AS audits`,
    [tenant.orgId])).rows[0];
  const titles = async (tenant: Tenant) => (await t.db.admin.query(
    'SELECT title FROM ai.knowledge_documents WHERE org_id = $1 ORDER BY title', [tenant.orgId])).rows.map((r) => r.title as string);
  const tenant = async (name: string): Promise<Tenant> => {
    const owner = await registerUser(t, 'owner');
    const orgId = await createOrg(t, owner, name);
    await onEnterprisePlan(t, orgId);
    const collection = (await t.http.post(`/v1/orgs/${orgId}/knowledge/collections`).set(owner.auth).send({ name: 'Handbook', readRoles: ['member'] }).expect(201)).body.id;
    return { orgId, owner, collection };
  };

  /**
   * Holds every extraction's worker until release(): the slots stay taken, so later uploads wait (or are refused). The
   * worker's start is stubbed (its answer is the text the worker would give); `entered` counts the uploads that asked
   * for a slot, `started` those that got one.
   */
  const holdExtractions = () => {
    const held = gate();
    let holding = true;
    const started = counter();
    const entered = counter();
    const slot = seams.slot.bind(extractor);
    jest.spyOn(seams, 'slot').mockImplementation((orgId: string) => {
      const granted = slot(orgId); // queued, or refused, synchronously
      entered.tick();
      return granted;
    });
    jest.spyOn(seams, 'runWorker').mockImplementation(async () => {
      started.tick();
      if (holding) await held.opened;
      return { text: 'Extracted text.' };
    });
    return { started, entered, release: () => { holding = false; held.open(); } };
  };

  beforeAll(async () => {
    t = await startKnowledgeApp();
    extractor = t.app.get(PdfTextExtractor);
    seams = extractor as unknown as ExtractorSeams;
    a = await tenant('Queue A');
    b = await tenant('Queue B');
    x = await tenant('Queue X');
  });
  afterEach(() => { jest.restoreAllMocks(); });
  afterAll(() => t?.close());

  it('bounds the uploads waiting for an extraction slot: the 9th waiter (PDF, HTML, a new version alike) is a 503 knowledge.extraction_busy with Retry-After, nothing stored', async () => {
    expect(extractor.limits).toMatchObject({ concurrency: 2, maxWaiting: 8, maxWaitingPerOrg: 2 });
    // one organization's queue only: the per-organization cap, tested below, is lifted here
    extractor.limits.maxWaitingPerOrg = 100;
    const document = (await t.http.post(url(a, 'documents')).set(a.owner.auth).send({ collectionId: a.collection, title: 'Policy', text: 'Version one.' }).expect(201)).body;
    const before = await stored(a);
    const hold = holdExtractions();
    try {
      const accepted = [send(upload(a, 'running-1.pdf')), send(upload(a, 'running-2.pdf'))];
      await hold.started.until(2);
      for (let i = 1; i <= 8; i++) accepted.push(send(upload(a, `waiting-${i}.pdf`)));
      await hold.entered.until(10);
      expect(extractor.queued()).toBe(8);

      const refused = await upload(a, 'ninth.pdf');
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe(String(EXTRACTION_BUSY_RETRY_SECONDS));
      expect(refused.body.error).toEqual({
        code: 'knowledge.extraction_busy',
        message: `the server is extracting the text of other files: 8 uploads wait already, the most it queues; retry in ${EXTRACTION_BUSY_RETRY_SECONDS} s`,
        details: { maxWaiting: 8 },
      });
      // an HTML file waits in the same slots; a new version of a document is refused alike
      const html = await upload(a, 'ninth.html', 'text/html', '<html><body><p>Ninth.</p></body></html>');
      expect([html.status, html.body.error.code]).toEqual([503, 'knowledge.extraction_busy']);
      const version = await t.http.post(url(a, `documents/${document.id}/versions`)).set(a.owner.auth)
        .attach('file', makePdf(['Version two.']), { filename: 'v2.pdf', contentType: 'application/pdf' });
      expect([version.status, version.body.error.code]).toEqual([503, 'knowledge.extraction_busy']);
      expect(extractor.queued()).toBe(8);
      expect(accepted.some((u) => u.settled)).toBe(false);

      hold.release();
      for (const u of accepted) expect((await u.res).status).toBe(201);
    } finally {
      hold.release();
      extractor.limits.maxWaitingPerOrg = 2;
    }
    expect(extractor.queued()).toBe(0);
    // the ten accepted, nothing of the three refused: no document, version, job or audit entry
    expect(await stored(a)).toEqual({ documents: before.documents + 10, versions: before.versions + 10, jobs: before.jobs + 10, audits: before.audits + 10 });
    expect((await titles(a)).filter((title) => /ninth/.test(title))).toEqual([]);
    expect((await t.http.get(url(a, `documents/${document.id}`)).set(a.owner.auth).expect(200)).body.latestVersion).toBe(1);
  });

  it('lets one organization queue at most 2 extractions: its third waiter is refused while another organization\'s upload still queues', async () => {
    const before = { a: await stored(a), b: await stored(b), x: await stored(x) };
    const hold = holdExtractions();
    try {
      // another organization's uploads hold both slots
      const running = [send(upload(x, 'x-1.pdf')), send(upload(x, 'x-2.pdf'))];
      await hold.started.until(2);
      const waitingA = [send(upload(a, 'a-1.pdf')), send(upload(a, 'a-2.html', 'text/html', '<p>A two.</p>'))];
      await hold.entered.until(4);
      expect(extractor.queued(a.orgId)).toBe(2);

      const third = await upload(a, 'a-3.pdf');
      expect(third.status).toBe(503);
      expect(third.headers['retry-after']).toBe(String(EXTRACTION_BUSY_RETRY_SECONDS));
      expect(third.body.error).toEqual({
        code: 'knowledge.extraction_busy',
        message: `2 uploads of this organization wait already for their text to be extracted, the most one organization may queue; retry in ${EXTRACTION_BUSY_RETRY_SECONDS} s`,
        details: { maxWaitingPerOrg: 2 },
      });

      // B is not starved by A: its upload takes its place in the queue
      const waitingB = send(upload(b, 'b-1.pdf'));
      await hold.entered.until(6);
      expect(extractor.queued(b.orgId)).toBe(1);
      expect(extractor.queued()).toBe(3);
      expect([...running, ...waitingA, waitingB].some((u) => u.settled)).toBe(false);

      hold.release();
      for (const u of [...running, ...waitingA, waitingB]) expect((await u.res).status).toBe(201);
    } finally {
      hold.release();
    }
    expect(await stored(x)).toEqual({ documents: before.x.documents + 2, versions: before.x.versions + 2, jobs: before.x.jobs + 2, audits: before.x.audits + 2 });
    expect(await stored(a)).toEqual({ documents: before.a.documents + 2, versions: before.a.versions + 2, jobs: before.a.jobs + 2, audits: before.a.audits + 2 });
    expect(await stored(b)).toEqual({ documents: before.b.documents + 1, versions: before.b.versions + 1, jobs: before.b.jobs + 1, audits: before.b.audits + 1 });
    expect(await titles(a)).not.toContain('a-3.pdf');
  });

  it('a note added while its collection is being deleted (its lock of the collection waits on the deletion\'s) is a 404 knowledge_collection.not_found, nothing stored', async () => {
    const doomed = (await t.http.post(url(a, 'collections')).set(a.owner.auth).send({ name: 'Doomed notes', readRoles: [] }).expect(201)).body.id;
    const before = await stored(a);
    // the deletion stops once it holds the collection's row lock, until the note's lock of it has been sent
    const locked = gate();
    const proceed = gate();
    const lock = knowledgeRepository.lockCollection.bind(knowledgeRepository);
    jest.spyOn(knowledgeRepository, 'lockCollection').mockImplementation(async (...args) => {
      await lock(...args);
      locked.open();
      await proceed.opened;
    });
    const sharing = gate();
    const shareCollection = knowledgeRepository.shareCollection.bind(knowledgeRepository);
    jest.spyOn(knowledgeRepository, 'shareCollection').mockImplementation((...args) => {
      const shared = shareCollection(...args);
      sharing.open();
      return shared;
    });

    const deletion = send(t.http.delete(url(a, `collections/${doomed}`)).set(a.owner.auth));
    await locked.opened;
    // the note's check of the collection passes (the row is still there), its lock of the row (FOR KEY SHARE) then waits
    const note = send(t.http.post(url(a, 'documents')).set(a.owner.auth).send({ collectionId: doomed, title: 'Late note', text: 'Too late.' }));
    await sharing.opened;
    // the lock waits on the deletion's: seen in pg_stat_activity, not guessed from a delay
    let waits = false;
    for (let tries = 0; !waits && tries < 2000; tries++) {
      waits = (await t.db.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%ai.lock_knowledge_collection(%'`)).rows[0].n > 0;
    }
    expect(waits).toBe(true);
    proceed.open();

    expect((await deletion.res).status).toBe(204);
    const res = await note.res;
    expect(res.status).toBe(404);
    expect(res.body.error).toEqual({ code: 'knowledge_collection.not_found', message: `knowledge_collection ${doomed} was not found` });
    expect(await stored(a)).toEqual(before);
    expect(await titles(a)).not.toContain('Late note');
    expect((await t.db.admin.query('SELECT count(*)::int AS n FROM ai.knowledge_collections WHERE id = $1', [doomed])).rows[0].n).toBe(0);
  });

  it('an upload whose collection is deleted after its check and before its lock of the collection is a 404 knowledge_collection.not_found, nothing stored', async () => {
    const doomed = (await t.http.post(url(a, 'collections')).set(a.owner.auth).send({ name: 'Doomed uploads', readRoles: [] }).expect(201)).body.id;
    const before = await stored(a);
    const shareCollection = knowledgeRepository.shareCollection.bind(knowledgeRepository);
    let deleted = 0;
    // between the upload's last check of the collection and its lock of it, the collection is deleted (and committed)
    jest.spyOn(knowledgeRepository, 'shareCollection').mockImplementation(async (...args) => {
      deleted = (await t.http.delete(url(a, `collections/${doomed}`)).set(a.owner.auth)).status;
      return shareCollection(...args);
    });

    const res = await t.http.post(url(a, `collections/${doomed}/documents`)).set(a.owner.auth)
      .attach('file', Buffer.from('Uploaded too late.'), { filename: 'late.txt', contentType: 'text/plain' });
    expect(deleted).toBe(204);
    expect(res.status).toBe(404);
    expect(res.body.error).toEqual({ code: 'knowledge_collection.not_found', message: `knowledge_collection ${doomed} was not found` });
    expect(await stored(a)).toEqual(before);
    expect(await titles(a)).not.toContain('late.txt');
  });
});
