import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AppError } from './app-error.js';
import { mapDatabaseError } from './database-errors.js';

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

/** Every error leaves the API in one shape: { error: { code, message, details? }, requestId }. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request & { id?: string }>();
    const res = ctx.getResponse<Response>();
    const requestId = String(req.id ?? '');
    const err = this.toAppError(exception);
    if (err.status >= 500) {
      this.logger.error({ requestId, err: exception instanceof Error ? { name: exception.name, message: exception.message, stack: exception.stack } : exception }, 'unhandled error');
    }
    const body: ErrorBody = { error: { code: err.code, message: err.message }, requestId };
    if (err.details !== undefined) body.error.details = err.details;
    if (!res.headersSent) res.status(err.status).json(body);
  }

  private toAppError(exception: unknown): AppError {
    if (exception instanceof AppError) return exception;
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse() as any;
      const message = typeof response === 'string' ? response : Array.isArray(response?.message) ? response.message.join('; ') : response?.message ?? exception.message;
      return new AppError(status, response?.code ?? HTTP_CODES[status] ?? 'error', message, response?.details);
    }
    const anyErr = exception as any;
    // body-parser: malformed JSON or too large a body
    if (anyErr?.type === 'entity.parse.failed') return AppError.badRequest('bad_request.json', 'the request body is not valid JSON');
    if (anyErr?.type === 'entity.too.large') return new AppError(413, 'payload_too_large', 'the request body is too large');
    const mapped = mapDatabaseError(exception);
    if (mapped) return mapped;
    return new AppError(HttpStatus.INTERNAL_SERVER_ERROR, 'internal', 'an unexpected error occurred');
  }
}
