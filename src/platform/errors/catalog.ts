import { applyDecorators } from '@nestjs/common';
import { ApiResponse, DECORATORS, type OpenAPIObject } from '@nestjs/swagger';
import { ErrorResponse } from '../http/error-response.js';
import { AppError } from './app-error.js';

/** What one error code means: the HTTP status it leaves with and a sentence for the OpenAPI document. */
export interface ErrorCodeSpec {
  status: number;
  description: string;
}

/** The entities of the `<entity>.not_found` codes among `K`. */
type NotFoundEntity<K> = K extends `${infer E}.not_found` ? E : never;

/** Every declared code, from every module (codes are globally unique: `<module>.<what>`). */
const registry = new Map<string, ErrorCodeSpec>();

/**
 * A module declares its error codes once:
 *
 *   export const LedgerErrors = defineErrorCodes({ 'ledger.unbalanced': { status: 422, description: '...' } });
 *   throw LedgerErrors.error('ledger.unbalanced', 'entry does not balance ...');
 *
 * The status comes from the declaration, so one code always leaves with one status. The database can raise a
 * declared code too: `RAISE ... USING HINT = 'ledger.unbalanced'` (see `mapDatabaseError`).
 */
export function defineErrorCodes<const T extends Record<string, ErrorCodeSpec>>(codes: T) {
  for (const [code, spec] of Object.entries(codes)) {
    const known = registry.get(code);
    if (known && (known.status !== spec.status || known.description !== spec.description)) throw new Error(`error code ${code} is declared twice, differently`);
    registry.set(code, spec);
  }
  return {
    codes,
    error(code: keyof T & string, message: string, details?: unknown): AppError {
      return new AppError(codes[code].status, code, message, details);
    },
    /** `<entity>.not_found`, for an entity whose code this module declares. */
    notFound(entity: NotFoundEntity<keyof T>, id?: string): AppError {
      const code = `${entity}.not_found`;
      return new AppError(codes[code].status, code, id ? `${entity} ${id} was not found` : `${entity} was not found`);
    },
  };
}

/** The declaration of a code, if some module declared it. */
export function errorCodeSpec(code: string): ErrorCodeSpec | undefined {
  return registry.get(code);
}

const STATUS_TEXT: Record<number, string> = {
  400: 'The input is invalid (`validation_failed` names each field)',
  403: 'The caller may not do this',
  404: 'Not found, or not visible to the caller',
  409: 'Conflicts with existing data',
  422: 'Rejected by a business rule',
};

/**
 * Adds to the handler's `x-error-codes` (a second @ApiErrorCodes on one handler adds its codes: swagger's ApiExtension
 * would keep only the first list applied, silently).
 */
function addErrorCodes(specs: DocumentedErrorCode[]): MethodDecorator {
  return (_target, _key, descriptor) => {
    const extensions = Reflect.getMetadata(DECORATORS.API_EXTENSION, descriptor.value as object) ?? {};
    const known = (extensions['x-error-codes'] ?? []) as DocumentedErrorCode[];
    const added = specs.filter((s) => !known.some((k) => k.code === s.code));
    Reflect.defineMetadata(DECORATORS.API_EXTENSION, { ...extensions, 'x-error-codes': [...added, ...known] }, descriptor.value as object);
    return descriptor;
  };
}

/**
 * Documents the declared codes an operation can answer with: one response per status, whose description
 * lists its codes (other statuses stay with `ApiErrors`), and the `x-error-codes` extension (code, status, description) for generated clients.
 * An undeclared code fails at startup, so the document cannot name a code that does not exist.
 */
export function ApiErrorCodes(...codes: string[]): MethodDecorator {
  const specs = codes.map((code) => {
    const spec = registry.get(code);
    if (!spec) throw new Error(`ApiErrorCodes: ${code} is not declared with defineErrorCodes`);
    return { code, ...spec };
  });
  const byStatus = new Map<number, typeof specs>();
  for (const s of specs) byStatus.set(s.status, [...(byStatus.get(s.status) ?? []), s]);
  return applyDecorators(
    ...[...byStatus].map(([status, list]) => ApiResponse({
      status,
      description: `${STATUS_TEXT[status] ?? 'Error'}. error.code is one of: ${list.map((s) => `\`${s.code}\` (${s.description})`).join('; ')}`,
      type: ErrorResponse,
    })),
    addErrorCodes(specs),
  ) as MethodDecorator;
}

/** An entry of `x-error-codes`: a declared code, the status it leaves with, and what it means. */
export type DocumentedErrorCode = { code: string } & ErrorCodeSpec;

function documented(code: string): DocumentedErrorCode {
  const spec = registry.get(code);
  if (!spec) throw new Error(`error code ${code} is not declared with defineErrorCodes`);
  return { code, ...spec };
}

const genericCodes = new Set<string>();

/**
 * Codes any operation can answer whatever it declares (the router, the body parser, validation, authentication, the rate
 * limiter, a database or queue that is down). Listed once, in the document root's `x-generic-error-codes`, not per operation.
 */
export function declareGenericErrorCodes(...codes: string[]): void {
  for (const code of codes) genericCodes.add(code);
}

/** An operation of the OpenAPI document as the derivations read it (its extensions are `x-...` keys). */
export type DocumentOperation = Record<string, unknown> & { security?: unknown[]; parameters?: unknown[]; responses: Record<string, unknown> };

const derivations: ((op: DocumentOperation, path: string, method: string) => readonly string[])[] = [];

/**
 * Codes an operation answers because of how it is declared rather than what its handler throws: a tenant route
 * (`x-omnizen-scope`), a required role (`x-omnizen-roles`), a plan requirement (`x-omnizen-billing`), a cursor
 * parameter. The module that owns the codes registers the rule, so the platform does not name another module's codes.
 */
export function deriveErrorCodes(derive: (op: DocumentOperation, path: string, method: string) => readonly string[]): void {
  derivations.push(derive);
}

/**
 * Completes each operation's `x-error-codes` (declared with @ApiErrorCodes) with the derived codes, adds an error
 * response for any status a derived code needs, and lists the generic codes once as `x-generic-error-codes`. An error
 * answer whose code is in neither list breaks the contract (test/support/contract.ts).
 */
export function documentErrorCodes(doc: OpenAPIObject, errorResponse: (status: number) => object): OpenAPIObject {
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item as Record<string, DocumentOperation>)) {
      if (!['get', 'put', 'post', 'delete', 'patch'].includes(method)) continue;
      const own = (op['x-error-codes'] ?? []) as DocumentedErrorCode[];
      const codes = new Set(own.map((c) => c.code));
      const added = derivations.flatMap((derive) => derive(op, path, method)).filter((code) => !codes.has(code) && codes.add(code));
      if (added.length === 0 && own.length === 0) continue;
      const all = [...own, ...added.map(documented)];
      for (const { status } of all) op.responses[status] ??= errorResponse(status);
      op['x-error-codes'] = all;
    }
  }
  (doc as OpenAPIObject & { 'x-generic-error-codes'?: DocumentedErrorCode[] })['x-generic-error-codes'] = [...genericCodes].map(documented);
  return doc;
}
