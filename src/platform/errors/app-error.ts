import { HttpStatus } from '@nestjs/common';

/**
 * The one error type modules throw. `code` is stable and machine-readable
 * (e.g. `organization.not_found`, `billing.limit_reached`); `message` names the problem.
 */
export class AppError extends Error {
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

  static unauthorized(message = 'authentication is required'): AppError {
    return new AppError(HttpStatus.UNAUTHORIZED, 'auth.unauthorized', message);
  }
}
