import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiResponse, type OpenAPIObject } from '@nestjs/swagger';
import { RETRYABLE_ERRORS } from '../errors/database-errors.js';

export class ErrorDetail {
  @ApiProperty({ example: 'organization.not_found' }) code: string;
  @ApiProperty({ example: 'organization 3f0c... was not found' }) message: string;
  @ApiPropertyOptional({ description: 'Per-field problems for validation errors, or other structured context' }) details?: unknown;
}

export class ErrorResponse {
  @ApiProperty({ type: ErrorDetail }) error: ErrorDetail;
  @ApiProperty({ example: '6c1f2b1e-6f0e-4c55-9b87-2a4d8e1b7f3a' }) requestId: string;
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'The input is invalid: the message names each field',
  401: 'No valid access token',
  402: 'The plan does not include this, or a plan limit is reached',
  403: 'The caller may not do this in this organization',
  404: 'Not found, or not visible to the caller',
  409: 'Conflicts with existing data',
  422: 'Rejected by a business rule',
  429: 'Too many attempts',
};

export function ApiErrors(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(...statuses.map((status) => ApiResponse({ status, description: DESCRIPTIONS[status], type: ErrorResponse })));
}

export class PageInfo {
  @ApiPropertyOptional({ description: 'Pass as ?cursor= to get the next page; absent on the last page' })
  nextCursor?: string;
}

type Example = { summary?: string; value?: unknown };
type ResponseObject = { description?: string; headers?: Record<string, unknown>; content?: Record<string, { schema?: unknown; example?: unknown; examples?: Record<string, Example> }> };
type ErrorBody = { error?: { code?: string } };

const RETRYABLE_DESCRIPTION = 'Retryable: database_unavailable (PostgreSQL unreachable, or the connection was lost), ' +
  'database_timeout (a statement or lock timeout), queue_unavailable (the job queue is down). Retry after Retry-After seconds.';

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'] as const;

/**
 * Every operation that touches the database (all but the health probes, which report their own 503)
 * can answer 503 with Retry-After: database_unavailable, database_timeout, queue_unavailable.
 * Added to the document in one pass rather than on each controller, so no route can miss it.
 */
export function documentRetryableErrors(document: OpenAPIObject): OpenAPIObject {
  const errorSchema = document.components?.schemas?.ErrorResponse ? { $ref: '#/components/schemas/ErrorResponse' } : { type: 'object' };
  const examples = Object.fromEntries(Object.entries(RETRYABLE_ERRORS).map(([code, { message }]) => [
    code, { summary: code, value: { error: { code, message }, requestId: '6c1f2b1e-6f0e-4c55-9b87-2a4d8e1b7f3a' } },
  ]));
  for (const [path, item] of Object.entries(document.paths)) {
    if (path.startsWith('/health')) continue;
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (!operation) continue;
      // an operation may document a 503 of its own (billing.stripe_not_configured): the retryable ones join it
      const own = operation.responses['503'] as ResponseObject | undefined;
      const media = own?.content?.['application/json'];
      const ownExamples: Record<string, Example> = media?.examples ?? (media?.example !== undefined ? { [String((media.example as ErrorBody).error?.code ?? 'example')]: { value: media.example } } : {});
      operation.responses['503'] = {
        description: [own?.description, RETRYABLE_DESCRIPTION].filter(Boolean).join('; or '),
        headers: { ...own?.headers, 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', example: 5 } } },
        content: { 'application/json': { schema: media?.schema ?? errorSchema, examples: { ...ownExamples, ...examples } } },
      };
    }
  }
  return document;
}
