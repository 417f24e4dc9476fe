import { AI_BUDGET_ERROR_CODES } from '../../platform/ai/budget-errors.js';
import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the knowledge base answers with (besides `<entity>.not_found` and validation errors). */
export const KnowledgeErrors = defineErrorCodes({
  'knowledge_collection.not_found': { status: 404, description: 'no knowledge collection of this organization (readable by the caller) has this id' },
  'knowledge_document.not_found': { status: 404, description: 'no knowledge document of this organization (readable by the caller) has this id' },
  'knowledge.file_missing': { status: 400, description: 'the request has no file part: a multipart body without a part named file, or no body (an empty one of any type); a body of another type than multipart/form-data is a 415 unsupported_media_type' },
  'knowledge.file_empty': { status: 400, description: 'the uploaded file is empty' },
  'knowledge.file_too_large': { status: 413, description: 'the uploaded file is larger than the configured limit (KNOWLEDGE_MAX_UPLOAD_BYTES)' },
  'knowledge.unsupported_type': { status: 415, description: 'the file is not plain text, Markdown, HTML or PDF' },
  'knowledge.unreadable_file': { status: 422, description: 'the file could not be read as its type (a corrupt PDF, text that is not UTF-8, HTML whose elements nest more than 1,000 levels deep)' },
  'knowledge.extraction_limit': { status: 422, description: 'the PDF\'s or HTML file\'s text could not be extracted within the limits: more than 2,000 pages (a PDF), more than 256 MB of memory, or more than 30 s; the message names the limit' },
  'knowledge.extraction_busy': { status: 503, description: 'too many uploads wait for their PDF or HTML text to be extracted (KNOWLEDGE_EXTRACTION_MAX_WAITING in the process, KNOWLEDGE_EXTRACTION_MAX_WAITING_PER_ORG of the organization), or no slot came free within KNOWLEDGE_EXTRACTION_MAX_WAIT_MS; nothing was stored: retry after Retry-After seconds' },
  'knowledge.no_text': { status: 422, description: 'no text could be extracted from the file' },
  'knowledge.text_too_large': { status: 413, description: 'the text extracted from the file is longer than a document may hold (1,000,000 characters, as for a note)' },
  'knowledge.invalid_field': { status: 400, description: 'a form field of the upload is missing or invalid, or the multipart body cannot be read (no boundary, or one the body lacks; cut short): the message names the problem' },
  'knowledge.collection_name_taken': { status: 409, description: 'a collection of this organization already has that name' },
  'knowledge.query_empty': { status: 400, description: 'the search query is empty' },
  'knowledge.k_too_large': { status: 400, description: 'k is above the cap of results per search' },
  'knowledge.embedding_unavailable': { status: 503, description: 'the embedding provider did not answer; retry later' },
  'knowledge.version_not_found': { status: 404, description: 'the document has no version with that number' },
  // an embedding call the organization's AI budget cannot take (a search; an ingestion job fails its version with it)
  ...AI_BUDGET_ERROR_CODES,
});
