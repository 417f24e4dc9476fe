import { randomInt } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

/**
 * The worker thread that converts an HTML upload to text (pdf-text-extraction.ts starts one per HTML file and ends it):
 * html-to-text took 9 s over a 10 MB page, which on the main thread froze every request of the process. Here it runs
 * with a capped heap, cut by the main thread when it runs out of time or memory, like a PDF's extraction.
 *
 * html-to-text walks the elements recursively, one call per level of nesting: 2,000 nested elements overflowed the
 * main thread's stack. The walk stops at `maxDepth` (html-to-text's limits.maxDepth, which writes its `ellipsis` in
 * place of what is deeper): this worker sets a marker of its own as that ellipsis and refuses the file when the
 * marker is in the text, rather than storing a text with parts silently missing.
 *
 * Run by Node itself (no loader of ours under Jest): only type imports and erasable TypeScript, packages only.
 */

export interface HtmlTextWorkerInput {
  /** marks this worker's data: the module does nothing when imported anywhere else */
  htmlText: true;
  html: string;
  /** refuse a text (as stored: without NUL, trimmed) longer than this */
  maxChars: number;
  /** refuse elements nested deeper than this */
  maxDepth: number;
}

/** The one message the worker posts. */
export type HtmlTextWorkerResult =
  | { text: string }
  /** the text, as stored, is this many characters long: above maxChars */
  | { tooLong: number }
  /** elements are nested deeper than maxDepth */
  | { tooDeep: true }
  /** html-to-text could not convert the file */
  | { unreadable: string };

/** The text as stored: what extractDocumentText does after extraction. */
const stored = (text: string): string => text.replace(/\u0000/g, '').trim();

async function extract(input: HtmlTextWorkerInput): Promise<HtmlTextWorkerResult> {
  const { convert } = await import('html-to-text');
  // private-use characters and digits: no formatter changes them (headings are upper-cased), no page holds them by chance
  let marker = `\uE000${randomInt(1e9)}\uE001`;
  while (input.html.includes(marker)) marker = `\uE000${randomInt(1e9)}\uE001`;
  let text: string;
  try {
    text = convert(input.html, {
      wordwrap: false,
      selectors: [{ selector: 'a', options: { ignoreHref: true } }, { selector: 'img', format: 'skip' }],
      // no truncation: the upload's size is bounded already (KNOWLEDGE_MAX_UPLOAD_BYTES)
      limits: { maxDepth: input.maxDepth, ellipsis: marker, maxInputLength: Number.MAX_SAFE_INTEGER },
    });
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
  if (text.includes(marker)) return { tooDeep: true };
  text = stored(text);
  return text.length > input.maxChars ? { tooLong: text.length } : { text };
}

if (parentPort && (workerData as HtmlTextWorkerInput | undefined)?.htmlText === true) {
  const port = parentPort;
  // the main thread ends the worker once it has the answer
  void extract(workerData as HtmlTextWorkerInput).then((result) => port.postMessage(result satisfies HtmlTextWorkerResult));
}
