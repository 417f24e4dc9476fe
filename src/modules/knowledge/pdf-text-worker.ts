import { parentPort, workerData } from 'node:worker_threads';

/**
 * The worker thread that extracts a PDF's text (pdf-text-extraction.ts starts one per PDF and ends it): a PDF of a few
 * hundred KB can hold streams that inflate to hundreds of MB, or thousands of pages, and pdf.js reads them with the
 * CPU and memory of whichever thread runs it. Here that is a thread of its own, with a capped heap, that the main
 * thread ends when it runs out of time or memory. It reads page by page and stops once the text is longer than a
 * document may hold, or at once when the PDF has more pages than the cap.
 *
 * The text is unpdf's `extractText(pdf, { mergePages: true })`, page by page: each page's items joined (a line break
 * after an item that ends a line), the pages joined by line breaks, then whitespace collapsed as unpdf does it.
 *
 * Run by Node itself (no loader of ours under Jest): only type imports and erasable TypeScript, packages only.
 */

export interface PdfTextWorkerInput {
  /** marks this worker's data: the module does nothing when imported anywhere else */
  pdfText: true;
  bytes: Uint8Array;
  /** stop once the text (as stored: collapsed, without NUL, trimmed) is longer than this */
  maxChars: number;
  /** refuse a PDF with more pages than this */
  maxPages: number;
}

/** The one message the worker posts. */
export type PdfTextWorkerResult =
  | { text: string }
  /** the text passed maxChars by page `page` of `pages` (the extraction stopped there) */
  | { tooLong: { page: number; pages: number } }
  | { tooManyPages: number }
  /** pdf.js could not read the file */
  | { unreadable: string };

/** unpdf's normalizeMergedText (mergePages: true) */
export function collapseWhitespace(text: string): string {
  return text.replace(/[^\S\n]+/g, ' ').replace(/ ?\n ?/g, '\n').replace(/\n{3,}/g, '\n\n');
}

/** The length of the text as it would be stored: what extractDocumentText does after extraction. */
const storedLength = (raw: string): number => collapseWhitespace(raw).replace(/\u0000/g, '').trim().length;

interface TextItemLike {
  str?: string;
  hasEOL?: boolean;
}

async function extract(input: PdfTextWorkerInput): Promise<PdfTextWorkerResult> {
  const { getDocumentProxy } = await import('unpdf');
  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    pdf = await getDocumentProxy(input.bytes, { verbosity: 0 });
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
  const pages = pdf.numPages;
  if (pages > input.maxPages) return { tooManyPages: pages };
  const parts: string[] = [];
  let rawLength = 0;
  // the stored text is never longer than the raw text, and each raw character adds at most one: measuring again only
  // once the raw text has grown by what the stored text still lacks (or by a quarter) keeps the cost linear
  let measureAt = input.maxChars + 1;
  try {
    for (let n = 1; n <= pages; n++) {
      if (n > 1) {
        parts.push('\n');
        rawLength += 1;
      }
      const page = await pdf.getPage(n);
      // the page's items as they are read (getTextContent collects the same stream), so one page holding a huge
      // content stream stops early too
      const reader = page.streamTextContent().getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const item of value.items as TextItemLike[]) {
          if (item.str == null) continue;
          const s = item.hasEOL ? `${item.str}\n` : item.str;
          parts.push(s);
          rawLength += s.length;
        }
        if (rawLength >= measureAt) {
          const joined = parts.join('');
          parts.length = 0;
          parts.push(joined);
          const stored = storedLength(joined);
          if (stored > input.maxChars) return { tooLong: { page: n, pages } };
          measureAt = rawLength + Math.max(input.maxChars + 1 - stored, Math.ceil(rawLength / 4));
        }
      }
    }
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
  return { text: collapseWhitespace(parts.join('')) };
}

if (parentPort && (workerData as PdfTextWorkerInput | undefined)?.pdfText === true) {
  const port = parentPort;
  // the main thread ends the worker once it has the answer
  void extract(workerData as PdfTextWorkerInput).then((result) => port.postMessage(result satisfies PdfTextWorkerResult));
}
