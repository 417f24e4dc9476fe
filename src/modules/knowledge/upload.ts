import type { FastifyRequest } from 'fastify';
import type { Multipart, MultipartFile } from '@fastify/multipart';
import { AppError } from '../../platform/errors/app-error.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { KnowledgeErrors } from './knowledge.errors.js';
import type { UploadedText } from './knowledge.service.js';
import type { PdfTextExtractor } from './pdf-text-extraction.js';
import { contentTypeOf, extractDocumentText } from './text-extraction.js';

const TAG = /^[a-z0-9][a-z0-9_.-]{0,49}$/;
/** The form fields an upload may have besides its part `file` (UPLOAD_BODY). */
const UPLOAD_FIELDS = ['title', 'tags'];
const mb = (bytes: number) => (bytes >= 1024 * 1024 ? `${+(bytes / 1024 / 1024).toFixed(1)} MB` : `${bytes} bytes`);

/**
 * Reads a multipart upload: one `file` part, and the fields `title` and `tags` (comma-separated; any other field is a
 * 400 validation_failed naming it). The file is
 * read up to the limit (a larger one is a 413 naming the limit), typed by its media type or extension, and its
 * text extracted (a PDF's by `pdf`, in a worker thread, in the slots of the organization `orgId`), so a bad file is a
 * 4xx here rather than a failed job later.
 */
export async function readUpload(req: FastifyRequest, maxBytes: number, pdf: PdfTextExtractor, orgId: string): Promise<{ fields: { title?: string; tags: string[] }; file: UploadedText }> {
  // no body (an empty one of any type): a body of another type was a 415 before the route ran (json-body.ts)
  if (!req.isMultipart()) throw KnowledgeErrors.error('knowledge.file_missing', 'send the file as multipart/form-data with a part named "file"');
  const fields: Record<string, string> = {};
  let file: { part: MultipartFile; bytes: Buffer } | undefined;
  try {
    for await (const part of req.parts({ limits: { fileSize: maxBytes, files: 1, fields: 10, fieldSize: 10_000 } }) as AsyncIterableIterator<Multipart>) {
      if (part.type === 'file') {
        if (part.fieldname !== 'file') throw KnowledgeErrors.error('knowledge.invalid_field', `unexpected file part "${part.fieldname}": the file goes in the part named "file"`);
        file = { part, bytes: await part.toBuffer() };
      } else {
        // a misspelt field (titel) would otherwise be dropped silently: refused as a JSON body's unknown property is
        if (!UPLOAD_FIELDS.includes(part.fieldname)) {
          const problem = `property ${part.fieldname} should not exist`;
          throw PlatformErrors.error('validation_failed', `${problem}: send the part file and the fields ${UPLOAD_FIELDS.join(' and ')}`,
            [{ field: part.fieldname, problems: [problem] }]);
        }
        fields[part.fieldname] = String(part.value ?? '');
      }
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE') {
      throw KnowledgeErrors.error('knowledge.file_too_large', `the file is larger than the limit of ${mb(maxBytes)} (${maxBytes} bytes)`, { limitBytes: maxBytes });
    }
    if (code === 'FST_FILES_LIMIT' || code === 'FST_PARTS_LIMIT') throw KnowledgeErrors.error('knowledge.invalid_field', 'send one file and at most the fields title and tags');
    // anything else reading the parts is the body's: busboy's errors carry no code ("Multipart: Boundary not found",
    // "Unexpected end of multipart data": no boundary, one the body lacks, a body cut short or not multipart at all).
    // Nothing is written before the whole file is in memory, so nothing is left half-written.
    throw KnowledgeErrors.error('knowledge.invalid_field', `the multipart body could not be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!file) throw KnowledgeErrors.error('knowledge.file_missing', 'the request has no part named "file"');
  if (file.bytes.length === 0) throw KnowledgeErrors.error('knowledge.file_empty', `the file ${file.part.filename || ''} is empty (0 bytes)`.replace('  ', ' '));
  const type = contentTypeOf(file.part.mimetype, file.part.filename);
  if (!type) {
    throw KnowledgeErrors.error('knowledge.unsupported_type',
      `${file.part.mimetype || 'this type'} is not supported: upload plain text, Markdown, HTML or PDF (.txt, .md, .html, .pdf)`);
  }
  const title = fields.title?.trim();
  if (title !== undefined && title.length > 300) throw KnowledgeErrors.error('knowledge.invalid_field', 'title is longer than 300 characters');
  const tags = (fields.tags ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  if (tags.length > 20 || tags.some((t) => !TAG.test(t))) {
    throw KnowledgeErrors.error('knowledge.invalid_field', 'tags: up to 20, comma-separated, each 1-50 characters of a-z, 0-9, _ . -');
  }
  // a disconnected client's upload leaves the extraction queue (PdfTextExtractor.slot): its file is let go at once
  const socket = req.raw.socket;
  const clientGone = new AbortController();
  const disconnected = () => clientGone.abort();
  if (socket.destroyed) disconnected();
  else socket.once('close', disconnected);
  let text: string;
  try {
    text = await extractDocumentText(file.bytes, type, pdf, orgId, clientGone.signal);
  } finally {
    // a kept-alive socket serves later requests: this one's listener goes with it
    socket.off('close', disconnected);
  }
  return {
    fields: { title: title || undefined, tags: [...new Set(tags)] },
    file: { filename: file.part.filename ? file.part.filename.slice(0, 300) : null, contentType: type, byteSize: file.bytes.length, text },
  };
}

/** The OpenAPI body of an upload. */
export const UPLOAD_BODY = {
  schema: {
    type: 'object', required: ['file'],
    description: 'The file (plain text, Markdown, HTML or PDF) and optional fields',
    properties: {
      file: { type: 'string', format: 'binary', description: 'The file; its type from the part\'s Content-Type or the file name\'s extension', example: 'travel-policy.pdf' },
      title: { type: 'string', maxLength: 300, description: 'Title; the file name when omitted', example: 'Travel expenses' },
      tags: { type: 'string', description: 'Comma-separated tags', example: 'travel,policy' },
    },
  },
};
