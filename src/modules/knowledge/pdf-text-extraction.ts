import { Inject, Injectable } from '@nestjs/common';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CallTimer } from '../../platform/clock/clock.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { KnowledgeErrors } from './knowledge.errors.js';
import type { HtmlTextWorkerInput, HtmlTextWorkerResult } from './html-text-worker.js';
import type { PdfTextWorkerInput, PdfTextWorkerResult } from './pdf-text-worker.js';

/**
 * The limits of a PDF's extraction (memory, time and slots: an HTML file's too); past any of them the upload is a 422
 * knowledge.extraction_limit naming it.
 */
export const PDF_LIMITS = {
  /** a PDF with more pages is refused before any page is read */
  maxPages: 2_000,
  /** the worker's heap (resourceLimits), and the most its heap and buffers (inflated streams) may hold together */
  memoryMb: 256,
  /** the time one extraction may take, from the worker's start (on the injected CallTimer) */
  timeoutMs: 30_000,
  /** extractions at once; the others wait for a slot, so parallel uploads do not multiply the memory */
  concurrency: 2,
  /** how often the worker's memory is measured */
  memoryCheckMs: 100,
};

/**
 * How deeply an HTML file's elements may nest: html-to-text recurses once per level, and 2,000 levels overflowed the
 * main thread's stack (a 25 KB file). Real pages nest a few dozen levels.
 */
export const HTML_MAX_DEPTH = 1_000;

/** The Retry-After of a 503 knowledge.extraction_busy: an ordinary extraction takes well under a second. */
export const EXTRACTION_BUSY_RETRY_SECONDS = 5;

/** A 503 knowledge.extraction_busy with Retry-After: nothing was stored, the client may retry. */
function busy(message: string, details: Record<string, number>) {
  const err = KnowledgeErrors.error('knowledge.extraction_busy', `${message}; retry in ${EXTRACTION_BUSY_RETRY_SECONDS} s`, details);
  err.retryAfterSeconds = EXTRACTION_BUSY_RETRY_SECONDS;
  return err;
}

/** What ended an extraction early, and why the upload is refused. */
export class PdfExtractionLimit extends Error {}

/**
 * Extracts a PDF's text in a worker thread (pdf-text-worker.ts), never on the event loop, and an HTML file's likewise
 * (html-text-worker.ts, extractHtml): pdf.js takes the CPU and the memory the file asks for (a 650 KB PDF whose one stream inflates to 206 MB took 85 s and 770 MB in the process). The
 * worker's heap is capped (resourceLimits), its heap and buffers are measured while it runs, its time is cut by the
 * CallTimer, and it stops by itself once the text is longer than a document may hold; a worker past a limit is
 * terminated and the upload refused, naming the limit.
 */
@Injectable()
export class PdfTextExtractor {
  /**
   * The limits in force: PDF_LIMITS, how many extractions may wait for a slot (KNOWLEDGE_EXTRACTION_MAX_WAITING), one
   * organization's of them (KNOWLEDGE_EXTRACTION_MAX_WAITING_PER_ORG), and for how long one waits at most
   * (KNOWLEDGE_EXTRACTION_MAX_WAIT_MS). A test may change them on its app's instance.
   */
  readonly limits: typeof PDF_LIMITS & { maxWaiting: number; maxWaitingPerOrg: number; maxWaitMs: number };
  /** workers alive (started and not yet exited) */
  running = 0;
  private active = 0;
  /** the extractions waiting for a slot, first come first served; each holds its file in memory */
  private readonly waiting: { orgId: string; start: () => void }[] = [];

  constructor(private readonly timer: CallTimer, @Inject(APP_CONFIG) config: AppConfig) {
    this.limits = {
      ...PDF_LIMITS, maxWaiting: config.knowledge.extractionMaxWaiting, maxWaitingPerOrg: config.knowledge.extractionMaxWaitingPerOrg,
      maxWaitMs: config.knowledge.extractionMaxWaitMs,
    };
  }

  /** Extractions waiting for a slot now (of `orgId` only, when given). */
  queued(orgId?: string): number {
    return orgId === undefined ? this.waiting.length : this.waiting.filter((w) => w.orgId === orgId).length;
  }

  /**
   * The PDF's text (unpdf's extractText with mergePages), extracted for the organization `orgId`; a 4xx naming the
   * problem when it is refused, a 503 knowledge.extraction_busy when too many extractions wait already or no slot came
   * in time (slot). `clientGone`: aborted when the request's client disconnects, which ends its wait.
   */
  async extract(bytes: Buffer, maxChars: number, orgId: string, clientGone?: AbortSignal): Promise<string> {
    await this.slot(orgId, clientGone);
    try {
      return await this.runPdf(bytes, maxChars);
    } finally {
      this.release();
    }
  }

  /**
   * An HTML file's text (html-to-text), converted in a worker thread within the same limits of memory and time, in the
   * same slots: a 10 MB page took 9 s, which on the event loop froze every request. Elements nested deeper than
   * HTML_MAX_DEPTH are a 422 knowledge.unreadable_file (html-to-text recurses once per level).
   */
  async extractHtml(html: string, maxChars: number, orgId: string, clientGone?: AbortSignal): Promise<string> {
    await this.slot(orgId, clientGone);
    try {
      return await this.runHtml(html, maxChars);
    } finally {
      this.release();
    }
  }

  private async runPdf(bytes: Buffer, maxChars: number): Promise<string> {
    const limits = { ...this.limits };
    const input: PdfTextWorkerInput = { pdfText: true, bytes: new Uint8Array(bytes), maxChars, maxPages: limits.maxPages };
    let result: PdfTextWorkerResult;
    try {
      result = await this.runWorker<PdfTextWorkerResult>('pdf-text-worker', input, limits);
      if ('tooManyPages' in result) throw new PdfExtractionLimit(`it has ${result.tooManyPages} pages, more than ${limits.maxPages}`);
    } catch (err) {
      if (!(err instanceof PdfExtractionLimit)) throw err;
      throw KnowledgeErrors.error('knowledge.extraction_limit', `the PDF's text could not be extracted within the limits: ${err.message}`,
        { maxPages: limits.maxPages, memoryMb: limits.memoryMb, timeoutMs: limits.timeoutMs });
    }
    if ('text' in result) return result.text;
    if ('unreadable' in result) throw KnowledgeErrors.error('knowledge.unreadable_file', `the PDF could not be read: ${result.unreadable}`);
    throw KnowledgeErrors.error('knowledge.text_too_large',
      `the text extracted from the file is longer than the limit of ${maxChars} characters (as for a note; the extraction stopped at page ${result.tooLong.page} of ${result.tooLong.pages}): split it into several documents`,
      { limitChars: maxChars });
  }

  private async runHtml(html: string, maxChars: number): Promise<string> {
    const limits = { ...this.limits };
    const input: HtmlTextWorkerInput = { htmlText: true, html, maxChars, maxDepth: HTML_MAX_DEPTH };
    let result: HtmlTextWorkerResult;
    try {
      result = await this.runWorker<HtmlTextWorkerResult>('html-text-worker', input, limits);
    } catch (err) {
      if (!(err instanceof PdfExtractionLimit)) throw err;
      throw KnowledgeErrors.error('knowledge.extraction_limit', `the HTML's text could not be extracted within the limits: ${err.message}`,
        { memoryMb: limits.memoryMb, timeoutMs: limits.timeoutMs });
    }
    if ('text' in result) return result.text;
    if ('tooDeep' in result) {
      throw KnowledgeErrors.error('knowledge.unreadable_file', `the HTML could not be read: its elements are nested more than ${HTML_MAX_DEPTH} levels deep`,
        { maxDepth: HTML_MAX_DEPTH });
    }
    if ('unreadable' in result) throw KnowledgeErrors.error('knowledge.unreadable_file', `the HTML could not be read: ${result.unreadable}`);
    throw KnowledgeErrors.error('knowledge.text_too_large',
      `the text extracted from the file is ${result.tooLong} characters long, above the limit of ${maxChars} characters (as for a note): split it into several documents`,
      { limitChars: maxChars });
  }

  /**
   * Runs the worker `name` (its source next to this file) on `input` within `limits` of memory and time: its one
   * message, or a PdfExtractionLimit naming the limit it went past (the worker is then terminated).
   */
  private async runWorker<R>(name: 'pdf-text-worker' | 'html-text-worker', input: PdfTextWorkerInput | HtmlTextWorkerInput, limits: typeof PDF_LIMITS): Promise<R> {
    // the worker's source next to this file: .ts when run from source (tests), .js once built
    const worker = new Worker(new URL(`./${name}${extname(fileURLToPath(import.meta.url))}`, import.meta.url), {
      workerData: input,
      resourceLimits: { maxOldGenerationSizeMb: limits.memoryMb, maxYoungGenerationSizeMb: 32 },
      stdout: true, stderr: true, // pdf.js's warnings are not the app's log
    });
    this.running++;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => {
      this.running--;
      resolve();
    }));
    worker.stdout.resume();
    worker.stderr.resume();
    let stopTimer = () => {};
    let memoryCheck: NodeJS.Timeout | undefined;
    try {
      return await new Promise<R>((resolve, reject) => {
        const limit = (what: string) => reject(new PdfExtractionLimit(what));
        worker.once('message', resolve);
        worker.once('error', (err: Error & { code?: string }) => {
          if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') limit(`it needs more than ${limits.memoryMb} MB of memory`);
          else reject(err);
        });
        worker.once('exit', (code) => reject(new Error(`the ${name} exited (code ${code}) without an answer`)));
        stopTimer = this.timer.start(limits.timeoutMs, () => limit(`it takes longer than ${limits.timeoutMs / 1000} s`));
        // inflated streams are buffers outside the heap that resourceLimits caps: they are measured here
        memoryCheck = setInterval(() => {
          worker.getHeapStatistics().then((heap) => {
            if (heap.used_heap_size + heap.external_memory > limits.memoryMb * 1024 * 1024) limit(`it needs more than ${limits.memoryMb} MB of memory`);
          }, () => undefined); // the worker has just exited: its answer or its exit settles the promise
        }, limits.memoryCheckMs);
      });
    } finally {
      stopTimer();
      clearInterval(memoryCheck);
      // a worker past a limit is still reading: it ends here, and the answer waits until it has
      await worker.terminate();
      await exited;
    }
  }

  /**
   * A slot for an extraction of `orgId`: at once while one is free, else after the extractions waiting before it. The
   * waiting ones hold their files (up to KNOWLEDGE_MAX_UPLOAD_BYTES each) and their clients: past limits.maxWaiting
   * waiting, or limits.maxWaitingPerOrg of this organization (so one member's uploads cannot fill the queue ahead of
   * every other organization's), the upload is a 503 knowledge.extraction_busy with Retry-After, nothing stored.
   * A waiting upload leaves the queue (its file let go) when no slot has come within limits.maxWaitMs (on the injected
   * CallTimer): the same 503; and when `clientGone` aborts (its client disconnected: no one would get the answer).
   */
  private async slot(orgId: string, clientGone?: AbortSignal): Promise<void> {
    if (clientGone?.aborted) throw busy('the client disconnected before its upload got an extraction slot', {});
    if (this.active < this.limits.concurrency) {
      this.active++;
      return;
    }
    if (this.waiting.length >= this.limits.maxWaiting) {
      throw busy(`the server is extracting the text of other files: ${this.waiting.length} uploads wait already, the most it queues`,
        { maxWaiting: this.limits.maxWaiting });
    }
    if (this.queued(orgId) >= this.limits.maxWaitingPerOrg) {
      throw busy(`${this.queued(orgId)} uploads of this organization wait already for their text to be extracted, the most one organization may queue`,
        { maxWaitingPerOrg: this.limits.maxWaitingPerOrg });
    }
    const maxWaitMs = this.limits.maxWaitMs;
    // release hands its slot over (active unchanged); a waiter that leaves first is taken out of the queue, so no slot
    // is handed to it
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        stopTimer();
        clientGone?.removeEventListener('abort', disconnected);
      };
      const entry = { orgId, start: () => { done(); resolve(); } };
      const leave = (err: Error) => {
        const at = this.waiting.indexOf(entry);
        if (at < 0) return; // started already
        this.waiting.splice(at, 1);
        done();
        reject(err);
      };
      const disconnected = () => leave(busy('the client disconnected while its upload waited for an extraction slot', {}));
      const stopTimer = this.timer.start(maxWaitMs, () => leave(busy(
        `no extraction slot came free within ${maxWaitMs / 1000} s: the server is extracting the text of other files`, { maxWaitMs })));
      clientGone?.addEventListener('abort', disconnected, { once: true });
      this.waiting.push(entry);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next.start();
    else this.active--;
  }
}
