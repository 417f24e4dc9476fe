import { applyDecorators, type INestApplication, type Type } from '@nestjs/common';
import { ApiExtraModels, ApiOkResponse, ApiPropertyOptional, ApiResponse, DocumentBuilder, getSchemaPath, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { RETRYABLE_ERRORS } from '../errors/database-errors.js';
import { documentErrorCodes, type DocumentedErrorCode } from '../errors/catalog.js';
import type { EntitlementRequirement } from './tenant.js';
import { ErrorResponse } from './error-response.js';

type SchemaObject = NonNullable<OpenAPIObject['components']>['schemas'] extends Record<string, infer S> | undefined ? Exclude<S, { $ref: string }> : never;

/** Schema options of a property that holds any JSON value (settings, audit snapshots). */
export const ANY_JSON: { oneOf: SchemaObject[] } = {
  oneOf: [
    { type: 'string' }, { type: 'number' }, { type: 'boolean' },
    { type: 'object', additionalProperties: true }, { type: 'array', items: {} },
  ],
};

export { ErrorDetail, ErrorResponse } from './error-response.js';

const DESCRIPTIONS: Record<number, string> = {
  400: 'The input is invalid: the message names each field',
  401: 'No valid access token',
  402: 'The plan does not include this, or a plan limit is reached',
  403: 'The caller may not do this in this organization',
  404: 'Not found, or not visible to the caller',
  409: 'Conflicts with existing data',
  413: 'The request body is larger than the API accepts',
  414: 'The URL is longer than the API accepts: a path segment, or the request line (path and query string)',
  415: 'The request body is not JSON in UTF-8 (multipart/form-data on an upload), or is compressed (Content-Encoding)',
  422: 'Rejected by a business rule',
  429: 'Too many attempts',
  431: 'The request headers are larger than the API accepts',
  502: 'An outside service (Stripe, a calendar server) refused or failed; the message says what it answered',
  503: 'A service this operation needs is not configured or not reachable',
};

export function ApiErrors(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(...statuses.map((status) => ApiResponse({ status, description: DESCRIPTIONS[status], type: ErrorResponse })));
}

type HeaderObject = { description: string; schema: { type: 'string' } };

/** The Content-Disposition of a file answer (CSV, PDF, ZIP): its file name, and whether a browser shows it or saves it. */
export const CONTENT_DISPOSITION = (example: string): HeaderObject & { example: string } =>
  ({ description: 'The file name to save it under (attachment) or show it as (inline)', schema: { type: 'string' }, example });

/**
 * The 200 of a report served as JSON (the DTO) or, with ?format=csv or Accept: text/csv, as a CSV file. Not
 * @ApiProduces: it gives every response of the operation those types, so its errors (always JSON) would read as CSV
 * and the CSV as the DTO.
 */
export function ApiOkJsonOrCsv(type: Type<unknown>, options: { example?: unknown; headers?: Record<string, HeaderObject> } = {}): MethodDecorator {
  return applyDecorators(ApiExtraModels(type), ApiOkResponse({
    description: 'The report as JSON; or as a CSV file (?format=csv, or Accept: text/csv without ?format)',
    content: {
      'application/json': { schema: { $ref: getSchemaPath(type) }, ...(options.example !== undefined ? { example: options.example } : {}) },
      'text/csv': { schema: { type: 'string', description: 'CSV with a header row' } },
    },
    headers: { 'Content-Disposition': { ...CONTENT_DISPOSITION('attachment; filename="report.csv"'), description: 'With the CSV only: attachment, and the file name to save it under' }, ...options.headers },
  }));
}

export class PageInfo {
  @ApiPropertyOptional({ description: 'Pass as ?cursor= to get the next page; absent on the last page' })
  nextCursor?: string;
}

const JSON_ERROR = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } };
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** Component schemas a module adds to the document beyond its DTOs (e.g. the webhooks' delivered bodies). */
const extraSchemas: (() => Record<string, Record<string, unknown>>)[] = [];
export function registerOpenApiSchemas(schemas: () => Record<string, Record<string, unknown>>): void {
  extraSchemas.push(schemas);
}

const documents = new WeakMap<INestApplication, OpenAPIObject>();

/**
 * The OpenAPI document of the application: what Nest's explorer finds in the decorators, completed with
 * what holds for every operation (the generic error statuses each can answer, `security: []` on the public
 * ones), so the document lists every status a caller can get. The test suite validates every response
 * against it (test/support/contract.ts) and the TypeScript SDK is generated from it.
 */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  // built once per application (about a second of CPU): /docs serves it and the test suite's contract checks against it
  const built = documents.get(app);
  if (built) return built;
  const config = new DocumentBuilder()
    .setTitle('OmniZen API')
    .setDescription(
      'Multi-tenant platform core. Organization routes live under /v1/orgs/{orgId}; row-level security in PostgreSQL ' +
        'keeps organizations apart. Errors always have the shape { error: { code, message, details? }, requestId }; ' +
        '`null` is accepted only where a field is nullable, and there it clears the value. Each operation lists the codes ' +
        'it can answer in `x-error-codes` (code, status, description); the codes any operation can answer (validation, ' +
        'authentication, rate limit, an unavailable database) are listed once, in the document\'s `x-generic-error-codes`.',
    )
    .setVersion('0.1.0')
    .setLicense('Proprietary', 'https://omnizen.app/terms')
    .addServer('/', 'The server that serves this document')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Our access token, the Supabase service-role key, or an API key (ozk_live_<id>_<secret>: organization routes only, each operation names the scope it needs in x-omnizen-api-key-scope)' })
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  for (const schemas of extraSchemas) Object.assign((doc.components ??= {}).schemas ??= {}, schemas());
  // the codes each handler declares itself (@ApiErrorCodes), before the derived ones join them
  const declared = new Map<object, Set<string>>();
  for (const item of Object.values(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      declared.set(op, new Set(((op as Operation)['x-error-codes'] as DocumentedErrorCode[] | undefined ?? []).map((c) => c.code)));
      // no guard metadata reaches the explorer: a route without a bearer requirement is a @Public() one
      if (!op.security) op.security = [];
      // 431: Node's parser refuses headers over its limit before any route (framework-errors.ts)
      const generic: number[] = [414, 431];
      if (op.security.length > 0) generic.push(401);
      // a path parameter other than the organization's (checked first, 404) is validated too: a NUL character in it is a 400.
      // A write with no body of its own still reads one sent to it: invalid JSON (or an empty one sent as application/json)
      // is a 400 (as is a Transfer-Encoding other than chunked), a large one a 413, another media type (or a
      // Content-Encoding) a 415 (GET and HEAD bodies are not read: json-body.ts)
      if (method !== 'get' || op.parameters?.some((p) => 'in' in p && (p.in === 'query' || (p.in === 'path' && p.name !== 'orgId')))) generic.push(400);
      if (method !== 'get') generic.push(413, 415);
      // a DTO whose fields are all optional may be left out (no body is taken for {}); JSON other than an object is a 400
      const body = op.requestBody && 'content' in op.requestBody ? op.requestBody : undefined;
      const schemaRef = (body?.content['application/json']?.schema as { $ref?: string } | undefined)?.$ref;
      const schema = schemaRef ? doc.components?.schemas?.[schemaRef.split('/').pop()!] as SchemaObject | undefined : undefined;
      if (body && schema && !schema.required?.length) body.required = false;
      // the generic codes of the database's refusals (mapDatabaseError): a write's statements may meet a check or a rule
      // (422 invalid, rejected), a key or a concurrent change (409 conflict.unique, conflict.reference, conflict.retry: a
      // deadlock, a serialization failure) or a policy (403 forbidden); a read with input may meet a value the database
      // refuses (422 invalid)
      if (method !== 'get') generic.push(403, 409, 422);
      else if (generic.includes(400)) generic.push(422);
      for (const status of generic) {
        op.responses[status] ??= { description: DESCRIPTIONS[status], content: JSON_ERROR };
      }
    }
  }
  documentErrorCodes(doc, (status) => ({ description: DESCRIPTIONS[status] ?? 'Error', content: JSON_ERROR }));
  const document = documentRetryableErrors(documentRateLimits(documentPlanErrors(doc, declared)));
  documents.set(app, document);
  return document;
}

type Operation = NonNullable<OpenAPIObject['paths'][string]['get']> & Record<string, unknown>;

const KEYED_402 = 'with an API key, when the organization\'s plan does not include API access (api_access): checked on every request made '
  + 'with a key, so a key stops working after a downgrade and works again after an upgrade (the message starts "API keys need a plan with API access")';

/** Why a route's plan requirement (x-omnizen-billing) answers `code`, as the plan gate (EntitlementsService.enforce) decides it. */
function requirementReason(code: string, r: EntitlementRequirement): string | undefined {
  switch (code) {
    case 'billing.subscription_inactive':
      return `the organization's ${r.app} subscription (a personal organization's: its person's) is read-only: the trial ended, `
        + 'a payment is past due beyond the grace period, or it is canceled, unpaid, paused or incomplete; reads still work (details: app, plan, status)';
    case 'billing.feature_not_in_plan':
      return r.feature && !r.consumes ? `the organization's ${r.app} plan does not include ${r.feature} `
        + '(details: app, feature, plan, upgradeTo = the cheapest plan that does; GET /v1/billing/apps lists each plan\'s features)' : undefined;
    case 'billing.limit_reached':
      return r.consumes ? `the ${r.app} plan's ${r.feature} limit is reached (details: app, feature, plan, limit, usage, upgradeTo = a plan with more)` : undefined;
    default:
      return undefined;
  }
}

/**
 * Each 402 response says which codes the operation can answer and when: one sentence per 402 code of its x-error-codes,
 * from the metadata those codes are derived from (the route's plan requirement, x-omnizen-billing; an API key's plan check
 * on every operation open to keys, x-omnizen-api-key-scope, TenantTransactionInterceptor) and, for a code the handler
 * declares beyond its requirement (a journal entry in a foreign currency needs full_accounting), the code's own description;
 * and which requests of the operation the route's requirement leaves alone (x-omnizen-only-stops, @OnlyStops).
 */
function documentPlanErrors(document: OpenAPIObject, declared: Map<object, Set<string>>): OpenAPIObject {
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const op = item[method] as Operation | undefined;
      const own = op?.responses['402'] as ResponseObject | undefined;
      if (!op || !own) continue;
      const requirement = op['x-omnizen-billing'] as EntitlementRequirement | undefined;
      const codes = ((op['x-error-codes'] ?? []) as DocumentedErrorCode[]).filter((c) => c.status === 402);
      const sentences = codes.map(({ code, description }) => {
        const routeReason = requirement && requirementReason(code, requirement);
        const reasons = [routeReason, op['x-omnizen-api-key-scope'] && code === 'billing.feature_not_in_plan' ? KEYED_402 : undefined].filter((r): r is string => !!r);
        if (!routeReason && declared.get(op)?.has(code)) reasons.push(reasons.length ? `checked by the operation itself: ${description}` : description);
        return `402 ${code}: ${(reasons.length ? reasons : [description]).join('; or ')}.`;
      });
      // @OnlyStops with a condition: the route's plan requirement is not checked for the requests that only stop something
      const stops = op['x-omnizen-only-stops'] as string | undefined;
      if (stops && requirement) {
        sentences.push(`The plan requirement does not apply to ${stops}: that is open on any plan, a read-only subscription included`
          + `${op['x-omnizen-api-key-scope'] ? ' (an API key\'s check of API access still does)' : ''}.`);
      }
      op.responses['402'] = { ...own, description: sentences.join(' '), content: own.content ?? JSON_ERROR } as never;
    }
  }
  return document;
}

type Example = { summary?: string; value?: unknown };
type ResponseObject = { description?: string; headers?: Record<string, unknown>; content?: Record<string, { schema?: unknown; example?: unknown; examples?: Record<string, Example> }> };
type ErrorBody = { error?: { code?: string } };

const RETRYABLE_DESCRIPTION = 'Retryable: database_unavailable (PostgreSQL unreachable, the connection was lost, or the server out of memory, disk or connections), ' +
  'database_timeout (a statement or lock timeout), queue_unavailable (the job queue is down). Retry after Retry-After seconds.';

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'] as const;

const RATE_LIMIT_HEADERS = {
  'RateLimit-Limit': { description: 'Requests allowed per minute in this bucket (organization, API key, or client IP)', schema: { type: 'integer', example: 600 } },
  'RateLimit-Remaining': { description: 'Requests left in the current window', schema: { type: 'integer', example: 0 } },
  'RateLimit-Reset': { description: 'Seconds until the window resets', schema: { type: 'integer', example: 42 } },
};

/**
 * Every operation but the health probes is rate-limited (src/platform/http/rate-limit.ts): organization routes per
 * organization or per API key, public routes per client IP. Over the limit: 429 `rate_limited` with Retry-After;
 * the RateLimit-* headers come with every limited response, successful or not.
 */
export function documentRateLimits(document: OpenAPIObject): OpenAPIObject {
  const errorSchema = document.components?.schemas?.ErrorResponse ? { $ref: '#/components/schemas/ErrorResponse' } : { type: 'object' };
  for (const [path, item] of Object.entries(document.paths)) {
    if (path.startsWith('/health')) continue;
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const own = operation.responses['429'] as ResponseObject | undefined;
      operation.responses['429'] = {
        description: [own?.description, 'rate_limited: too many requests per minute for the organization, API key or client IP; retry after Retry-After seconds'].filter(Boolean).join('; or '),
        headers: { ...own?.headers, 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer', example: 42 } }, ...RATE_LIMIT_HEADERS },
        content: (own?.content ?? { 'application/json': { schema: errorSchema } }) as never,
      };
      for (const [status, response] of Object.entries(operation.responses)) {
        if (!status.startsWith('2') || '$ref' in (response as object)) continue;
        (response as ResponseObject).headers = { ...(response as ResponseObject).headers, ...RATE_LIMIT_HEADERS };
      }
    }
  }
  return document;
}

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
