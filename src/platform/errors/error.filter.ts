import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from './app-error.js';
import { DatabaseUnavailableError, isConnectionSqlState, mapDatabaseError, sqlState } from './database-errors.js';
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

/** Node's errors of a connection refused, reset or not routed; pg's of a connection lost or never made. */
const CONNECTION_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE']);
const CONNECTION_MESSAGE = /^Connection terminated (unexpectedly|due to connection timeout)$/;

/**
 * Whether a 5xx is expected rather than a fault, and so left out of error reporting (the metrics still count it):
 * reporting it would let any caller spend the error reporter's quota by repeating a request while it lasts. Only a 503
 * with a Retry-After that is a deliberate refusal of ours (an AppError: queue_unavailable, semantic.busy...), or a database
 * that cannot be reached (a connection refused or lost, the server shutting down: isConnectionSqlState). Reported still:
 * statement and lock timeouts (57014, 55P03: a slow query or a lock held too long), an idle-in-transaction timeout
 * (25P03: a handler that left a transaction open), the server out of disk or memory (53xxx), and a pool whose
 * connections are all taken ("timeout exceeded when trying to connect": how a jam shows), though each is a retryable 503.
 */
function notReported(exception: unknown, err: AppError): boolean {
  if (err.status !== 503 || err.retryAfterSeconds === undefined) return false;
  if (exception instanceof AppError) return true;
  return exception instanceof DatabaseUnavailableError ? isConnectionFailure(exception.cause) : isConnectionFailure(exception);
}

/** Whether `err` (or what it wraps as `cause`) is a database connection refused, lost or never made. */
function isConnectionFailure(err: unknown): boolean {
  const seen = new Set<unknown>();
  for (let cur: any = err; cur && typeof cur === 'object' && !seen.has(cur); cur = cur.cause) {
    seen.add(cur);
    // a PostgreSQL error decides by its SQLSTATE (`severity` tells it from a Node error with a 5-letter code, EPIPE)
    if (typeof cur.code === 'string' && typeof cur.severity === 'string') return isConnectionSqlState(cur.code);
    const message = typeof cur.message === 'string' ? cur.message : '';
    // Node's errno in `code`, or only in the message (`connect ECONNREFUSED 10.0.0.5:5432`) once rewrapped
    if (CONNECTION_ERRNO.has(typeof cur.code === 'string' ? cur.code : '') || CONNECTION_ERRNO.has(/\b(E[A-Z_]{3,})\b/.exec(message)?.[1] ?? '')) return true;
    if (CONNECTION_MESSAGE.test(message)) return true;
  }
  return false;
}

/** Every error leaves the API in one shape: { error: { code, message, details? }, requestId }. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  /**
   * `onError`: told of every error answer (status, code, and the SQLSTATE of a database error), for the metrics;
   * `onServerError`: told of every 5xx but the expected ones (notReported) with its exception and request, for error
   * reporting (Sentry)
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
    if (err.status >= 500 && !notReported(exception, err)) this.onServerError?.(exception, req, err.status);
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
