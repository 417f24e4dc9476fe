import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from './app-error.js';
import { mapDatabaseError, sqlState } from './database-errors.js';
import { bodyMediaTypeOf } from '../http/json-body.js';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
  requestId: string;
}

const HTTP_CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'auth.unauthorized',
  402: 'payment_required',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'invalid',
  429: 'rate_limited',
};

/** Fastify's own messages, in our words where the difference matters to a caller. */
const FASTIFY_MESSAGES: Record<string, [code: string, message: string]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ['bad_request.json', 'the request body is not valid JSON'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['bad_request.json', 'the request body is empty but its Content-Type is application/json'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['payload_too_large', 'the request body is too large'],
};

function fastifyError(status: number, code: string, message: string, req: FastifyRequest): AppError {
  // a Content-Type Fastify cannot parse (a/b/c; always a 415): the operation's own media type is named (bodyMediaTypeOf)
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new AppError(status, 'unsupported_media_type', `send the body as ${bodyMediaTypeOf(req)}`);
  const [ourCode, ourMessage] = FASTIFY_MESSAGES[code] ?? [HTTP_CODES[status] ?? 'bad_request', message];
  return new AppError(status, ourCode, ourMessage);
}

/** Every error leaves the API in one shape: { error: { code, message, details? }, requestId }. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  /**
   * `onError`: told of every error answer (status, code, and the SQLSTATE of a database error), for the metrics;
   * `onServerError`: told of every 5xx but the retryable ones (with a Retry-After) with its exception and request, for
   * error reporting (Sentry)
   */
  constructor(
    private readonly onError?: (status: number, code: string, sqlState?: string) => void,
    private readonly onServerError?: (exception: unknown, req: FastifyRequest, status: number) => void,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<FastifyRequest>();
    const res = ctx.getResponse<FastifyReply>();
    const requestId = req.id;
    const err = this.toAppError(exception, req);
    this.onError?.(err.status, err.code, exception instanceof AppError ? undefined : sqlState(exception).code);
    // a retryable failure (a dependency down or busy, Retry-After sent) is not a fault to report: the metrics count it, and
    // reporting it would let any caller spend the error reporter's quota by repeating a request while it lasts
    if (err.status >= 500 && err.retryAfterSeconds === undefined) this.onServerError?.(exception, req, err.status);
    if (err.status === 503) {
      // retryable (a dependency down or slow): the caller was told to retry
      this.logger.warn({ requestId, code: err.code, cause: exception instanceof Error ? exception.message : String(exception) }, 'service unavailable');
    } else if (err.status >= 500) {
      this.logger.error({ requestId, err: exception instanceof Error ? { name: exception.name, message: exception.message, stack: exception.stack } : exception }, 'unhandled error');
    }
    const body: ErrorBody = { error: { code: err.code, message: err.message }, requestId };
    if (err.details !== undefined) body.error.details = err.details;
    if (err.retryAfterSeconds !== undefined && !res.sent) res.header('Retry-After', String(err.retryAfterSeconds));
    if (!res.sent) res.status(err.status).send(body);
  }

  private toAppError(exception: unknown, req: FastifyRequest): AppError {
    if (exception instanceof AppError) return exception;
    // Fastify's own 4xx before a handler runs (a body that cannot be parsed, too large, of a type not
    // accepted...): the adapter hands them over as an HttpException caused by the FastifyError
    const cause = (exception instanceof HttpException ? exception.cause : exception) as { code?: unknown; statusCode?: number; message?: string } | undefined;
    if (typeof cause?.code === 'string' && cause.code.startsWith('FST_') && cause.statusCode && cause.statusCode >= 400 && cause.statusCode < 500) {
      return fastifyError(cause.statusCode, cause.code, cause.message ?? '', req);
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse() as any;
      const message = typeof response === 'string' ? response : Array.isArray(response?.message) ? response.message.join('; ') : response?.message ?? exception.message;
      return new AppError(status, response?.code ?? HTTP_CODES[status] ?? 'error', message, response?.details);
    }
    const mapped = mapDatabaseError(exception);
    if (mapped) return mapped;
    return new AppError(HttpStatus.INTERNAL_SERVER_ERROR, 'internal', 'an unexpected error occurred');
  }
}
