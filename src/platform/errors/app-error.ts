import { HttpStatus } from '@nestjs/common';

/**
 * The one error type modules throw. `code` is stable and machine-readable
 * (e.g. `organization.not_found`, `billing.limit_reached`); `message` names the problem.
 */
export class AppError extends Error {
  /** a retryable failure (503) or a limit (429): seconds the caller should wait, sent as Retry-After */
  retryAfterSeconds?: number;

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  static notFound(entity: string, id?: string): AppError {
    return new AppError(HttpStatus.NOT_FOUND, `${entity}.not_found`, id ? `${entity} ${id} was not found` : `${entity} was not found`);
  }

  static forbidden(code: string, message: string, details?: unknown): AppError {
    return new AppError(HttpStatus.FORBIDDEN, code, message, details);
  }

  static conflict(code: string, message: string, details?: unknown): AppError {
    return new AppError(HttpStatus.CONFLICT, code, message, details);
  }

  static badRequest(code: string, message: string, details?: unknown): AppError {
    return new AppError(HttpStatus.BAD_REQUEST, code, message, details);
  }

  /** 503 with Retry-After: a dependency is down or busy, the same request may succeed later. */
  static unavailable(code: string, message: string, retryAfterSeconds: number): AppError {
    const err = new AppError(HttpStatus.SERVICE_UNAVAILABLE, code, message);
    err.retryAfterSeconds = retryAfterSeconds;
    return err;
  }

  static unauthorized(message = 'authentication is required'): AppError {
    return new AppError(HttpStatus.UNAUTHORIZED, 'auth.unauthorized', message);
  }
}
