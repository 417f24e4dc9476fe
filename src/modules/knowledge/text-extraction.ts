import { KnowledgeErrors } from './knowledge.errors.js';
import type { PdfTextExtractor } from './pdf-text-extraction.js';

/**
 * The longest text a document version stores, in characters: a note's limit, and the limit of the text extracted from
 * an upload (a 10 MB upload, a compressed PDF above all, can hold far more text than that).
 */
export const MAX_DOCUMENT_TEXT_CHARS = 1_000_000;

export const CONTENT_TYPES = ['text/plain', 'text/markdown', 'text/html', 'application/pdf'] as const;
export type KnowledgeContentType = (typeof CONTENT_TYPES)[number];

const BY_EXTENSION: Record<string, KnowledgeContentType> = {
  txt: 'text/plain', text: 'text/plain', md: 'text/markdown', markdown: 'text/markdown', html: 'text/html', htm: 'text/html', pdf: 'application/pdf',
};

/** The upload's type from its declared media type, else its file name's extension; undefined when unsupported. */
export function contentTypeOf(mimetype: string | undefined, filename: string | undefined): KnowledgeContentType | undefined {
  const declared = (mimetype ?? '').split(';')[0].trim().toLowerCase();
  if ((CONTENT_TYPES as readonly string[]).includes(declared)) return declared as KnowledgeContentType;
  if (declared === 'text/x-markdown') return 'text/markdown';
  // browsers and curl send application/octet-stream (or text/plain) for .md files: the extension decides then
  if (!declared || declared === 'application/octet-stream' || declared === 'text/plain') {
    const ext = filename?.toLowerCase().match(/\.([a-z]+)$/)?.[1];
    if (ext && Object.hasOwn(BY_EXTENSION, ext)) return BY_EXTENSION[ext];
    if (declared === 'text/plain') return 'text/plain';
  }
  return undefined;
}

/**
 * The text of an upload to the organization `orgId`; a 4xx naming the problem when it cannot be read or holds no text.
 * A PDF's and an HTML file's are extracted in a worker thread, within limits of memory and time (PdfTextExtractor):
 * never on the event loop; a 503 knowledge.extraction_busy when too many wait for a slot (the organization's, or all),
 * or none came in time. `clientGone` aborts when the request's client disconnects: a wait for a slot ends then.
 */
export async function extractDocumentText(bytes: Buffer, type: KnowledgeContentType, pdf: PdfTextExtractor, orgId: string, clientGone?: AbortSignal): Promise<string> {
  let text: string;
  if (type === 'application/pdf') {
    if (bytes.subarray(0, 5).toString('latin1') !== '%PDF-') {
      throw KnowledgeErrors.error('knowledge.unreadable_file', 'the file is not a PDF (it does not start with %PDF-)');
    }
    text = await pdf.extract(bytes, MAX_DOCUMENT_TEXT_CHARS, orgId, clientGone);
  } else {
    let raw: string;
    try {
      raw = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw KnowledgeErrors.error('knowledge.unreadable_file', 'the file is not UTF-8 text');
    }
    text = type === 'text/html' ? await pdf.extractHtml(raw, MAX_DOCUMENT_TEXT_CHARS, orgId, clientGone) : raw;
  }
  // NUL cannot be stored in a text column
  text = text.replace(/\u0000/g, '').trim();
  if (!text) throw KnowledgeErrors.error('knowledge.no_text', 'no text could be extracted from the file');
  if (text.length > MAX_DOCUMENT_TEXT_CHARS) {
    throw KnowledgeErrors.error('knowledge.text_too_large',
      `the text extracted from the file is ${text.length} characters long, above the limit of ${MAX_DOCUMENT_TEXT_CHARS} characters (as for a note): split it into several documents`,
      { limitChars: MAX_DOCUMENT_TEXT_CHARS });
  }
  return text;
}
