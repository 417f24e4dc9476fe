import { Param, ParseUUIDPipe } from '@nestjs/common';
import { DECORATORS } from '@nestjs/swagger';
import { AppError } from '../errors/app-error.js';
import { deriveErrorCodes } from '../errors/catalog.js';

/** The OpenAPI extension that lists the entities of an operation's @IdParam path ids (each can answer `<entity>.not_found`). */
const PATH_ENTITIES = 'x-omnizen-path-entities';

/**
 * A resource id from the path (`@IdParam('accountId', 'account')`). An id that is not a UUID names no
 * resource: 404 `<entity>.not_found`, the same answer as a well-formed id that does not exist (and as a
 * malformed organization id, tenant.ts), so clients handle one case. The operation's x-error-codes list that code.
 */
export const IdParam = (name: string, entity: string): ParameterDecorator => {
  const param = Param(name, new ParseUUIDPipe({ exceptionFactory: () => AppError.notFound(entity) }));
  return (target, key, index) => {
    param(target, key, index);
    // parameter decorators run before the method's: the handler already is target[key]; several ids add up
    const handler = key === undefined ? undefined : (target as Record<string | symbol, unknown>)[key];
    if (typeof handler !== 'function') return;
    const extensions = Reflect.getMetadata(DECORATORS.API_EXTENSION, handler) ?? {};
    Reflect.defineMetadata(DECORATORS.API_EXTENSION, { ...extensions, [PATH_ENTITIES]: [...(extensions[PATH_ENTITIES] ?? []), entity] }, handler);
  };
};

deriveErrorCodes((op) => ((op[PATH_ENTITIES] ?? []) as string[]).map((entity) => `${entity}.not_found`));
