import { Param, ParseUUIDPipe } from '@nestjs/common';
import { AppError } from '../errors/app-error.js';

/**
 * A resource id from the path (`@IdParam('accountId', 'account')`). An id that is not a UUID names no
 * resource: 404 `<entity>.not_found`, the same answer as a well-formed id that does not exist (and as a
 * malformed organization id, tenant.ts), so clients handle one case.
 */
export const IdParam = (name: string, entity: string): ParameterDecorator =>
  Param(name, new ParseUUIDPipe({ exceptionFactory: () => AppError.notFound(entity) }));
