import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import type { OpenAPIObject } from '@nestjs/swagger';

// ajv-formats is CommonJS with a default export
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as typeof import('ajv-formats').default;

/**
 * OpenAPI 3.0's `nullable: true` next to `allOf: [$ref]` (how a nullable nested object is written) means
 * "this object or null"; Ajv applies `nullable` to `type` only, so such schemas become an explicit anyOf.
 */
function nullableComposites<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map(nullableComposites) as T;
  if (schema === null || typeof schema !== 'object') return schema;
  const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, nullableComposites(v)])) as Record<string, unknown>;
  if (out.nullable === true && (out.allOf || out.oneOf || out.anyOf || out.$ref)) {
    const { nullable: _, type: __, description, ...rest } = out;
    return { description, anyOf: [rest, { type: 'null' }] } as T;
  }
  return out as T;
}

type ErrorCode = { code: string; status: number };
type Operation = { responses: Record<string, { content?: Record<string, { schema?: object }> }>; 'x-error-codes'?: ErrorCode[] };

/**
 * The OpenAPI document as a contract: every response the application sends is checked against the
 * schema its operation documents for that status. A status the operation does not document, a JSON body
 * that does not match, or an error body that is not our error shape is a violation. Schemas are compiled
 * on first use and kept, so each is compiled once per test file.
 */
export class ResponseContract {
  private readonly ajv: Ajv;
  private readonly validators = new Map<string, ValidateFunction | null>();
  readonly violations: string[] = [];

  /** The codes any operation may answer (the document's x-generic-error-codes), by code. */
  private readonly generic: Map<string, number>;

  constructor(private readonly doc: OpenAPIObject) {
    this.generic = new Map(((doc as { 'x-generic-error-codes'?: ErrorCode[] })['x-generic-error-codes'] ?? []).map((c) => [c.code, c.status]));
    this.ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema({ components: nullableComposites(doc.components) }, 'openapi');
  }

  /** A violation message, or undefined when the response is what the document says. */
  check(method: string, route: string | undefined, status: number, contentType: string | undefined, body: string): string | undefined {
    const op = route ? this.operation(method, route) : undefined;
    const where = `${method} ${route ?? '(no route)'} → ${status}`;
    const json = contentType?.startsWith('application/json');
    if (!op) {
      // unknown routes and routes outside the document (/docs): errors still have our shape
      if (status >= 400 && (!json || !this.errorShape(body))) return `${where}: an error that is not in the error shape: ${body.slice(0, 300)}`;
      return undefined;
    }
    const response = op.responses[String(status)];
    if (!response) return `${where}: status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`;
    if (status === 204) return body.length > 0 ? `${where}: 204 with a body` : undefined;
    const media = contentType?.split(';')[0].trim() ?? '';
    const content = response.content ?? {};
    if (!content[media]) return `${where}: content type "${media}" is not documented (documented: ${Object.keys(content).join(', ') || 'none'})`;
    if (!json) return undefined;
    const validate = this.validator(`${method} ${route} ${status}`, content[media].schema);
    if (!validate) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return `${where}: the body is not JSON`;
    }
    if (validate(parsed)) return status >= 400 ? this.undeclaredCode(op, where, status, parsed) : undefined;
    const problems = (validate.errors ?? []).slice(0, 8).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
    return `${where}: the body does not match the documented schema: ${problems}`;
  }

  /** Problems of a value against a schema of the document (examples, request bodies), or undefined. */
  problems(schema: object, value: unknown): string | undefined {
    const validate = this.validator(JSON.stringify(schema), schema)!;
    return validate(value) ? undefined : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
  }

  /** The operations this application answered, with status and error code (what the coverage report is told). */
  private recorder?: CallRecorder;

  /** Each (operation, status, code) this application answered so far, in the order first seen. */
  calls(): { operation: string; status: number; code?: string }[] {
    return this.recorder?.calls() ?? [];
  }

  /**
   * Checks every response of a Fastify instance; a violation is recorded and turns the answer into a 500 naming it.
   * Every answer's operation and status is recorded too, also of a route that writes its answer to the raw response
   * (a server-sent event stream passes no onSend hook): its status is recorded as its head is written. `serverLog`:
   * what the application logged about a request (server-log.ts), put into the violation of a 5xx, so that a 500 says
   * what the server threw (its name, message and stack).
   */
  attach(fastify: FastifyInstance, serverLog?: (requestId: string) => string | undefined): void {
    const recorder = (this.recorder = new CallRecorder(this.doc, process.env.OMNIZEN_API_CALLS_DIR));
    const sentByFastify = new WeakSet<object>();
    fastify.addHook('onRequest', async (req, reply) => {
      const raw = reply.raw;
      const writeHead = raw.writeHead;
      // Fastify writes the head after the onSend hooks: an answer they saw is recorded already (with its error code)
      raw.writeHead = function (this: typeof raw, ...args: Parameters<typeof raw.writeHead>) {
        if (!sentByFastify.has(req)) recorder.record(req.method, req.routeOptions?.url, args[0], undefined);
        return writeHead.apply(this, args);
      } as typeof raw.writeHead;
    });
    fastify.addHook('onSend', async (req, reply, payload) => {
      sentByFastify.add(req);
      recorder.record(req.method, req.routeOptions?.url, reply.statusCode, payload);
      if (typeof payload !== 'string' && payload !== null && payload !== undefined && !Buffer.isBuffer(payload)) return payload; // streams (CSV exports)
      const body = payload === null || payload === undefined ? '' : String(payload);
      const checked = this.check(req.method, req.routeOptions?.url, reply.statusCode, reply.getHeader('content-type') as string | undefined, body);
      const logged = serverLog?.(req.id); // taken for every answer: nothing is kept of the answered ones
      if (!checked) return payload;
      const violation = reply.statusCode >= 500 ? `${checked}\n  the server logged: ${logged ?? 'nothing about this request'}` : checked;
      this.violations.push(violation);
      reply.code(500).header('content-type', 'application/json; charset=utf-8');
      return JSON.stringify({ error: { code: 'contract.response_mismatch', message: violation }, requestId: req.id });
    });
  }

  /**
   * An error answer's code must be one the operation declares (its x-error-codes) or a generic one (the document's
   * x-generic-error-codes), with the status declared for it: a client generated from the document can then branch on
   * every code it may receive.
   */
  private undeclaredCode(op: Operation, where: string, status: number, body: unknown): string | undefined {
    const code = (body as { error?: { code?: unknown } })?.error?.code;
    if (typeof code !== 'string') return undefined; // the error shape is the schema's business
    const declared = op['x-error-codes']?.find((c) => c.code === code)?.status ?? this.generic.get(code);
    if (declared === undefined) {
      return `${where}: error code "${code}" is not declared in x-error-codes (declared: ${(op['x-error-codes'] ?? []).map((c) => c.code).join(', ') || 'none'}; nor generic)`;
    }
    if (declared !== status) return `${where}: error code "${code}" is declared with status ${declared}`;
    return undefined;
  }

  private operation(method: string, route: string): Operation | undefined {
    return (this.doc.paths[documentPath(route)] as Record<string, Operation> | undefined)?.[method.toLowerCase()];
  }

  private validator(key: string, schema: object | undefined): ValidateFunction | null {
    if (!this.validators.has(key)) {
      // $refs point into the document's components, registered once as the schema "openapi"
      this.validators.set(key, schema ? this.ajv.compile(JSON.parse(JSON.stringify(nullableComposites(schema)).replaceAll('"#/components/', '"openapi#/components/'))) : null);
    }
    return this.validators.get(key)!;
  }

  private errorShape(body: string): boolean {
    try {
      const parsed = JSON.parse(body);
      return typeof parsed?.error?.code === 'string' && typeof parsed.error.message === 'string' && typeof parsed.requestId === 'string';
    } catch {
      return false;
    }
  }
}

/** A Fastify route (`/v1/orgs/:orgId`) as the document writes its path (`/v1/orgs/{orgId}`). */
function documentPath(route: string): string {
  return route.replace(/\/$/, '').replace(/:([A-Za-z0-9_]+)/g, '{$1}') || '/';
}

/**
 * Which operations the tests called, with which status and error code, for the coverage report at the end of a full
 * run (test/support/api-coverage-reporter.mjs, which names the directory in OMNIZEN_API_CALLS_DIR). Each application
 * appends to a file of its own, and each worker process writes the document's operations once to a file of its own:
 * Jest's parallel workers never write to the same file. A line is written the first time its triple is seen. Without
 * OMNIZEN_API_CALLS_DIR the calls are only kept in memory (`calls()`, for a test of the recording itself).
 */
class CallRecorder {
  private readonly seen = new Set<string>();
  private readonly file?: string;
  private readonly operations: Set<string>;

  constructor(doc: OpenAPIObject, dir?: string) {
    const catalog = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item as Record<string, Operation & { operationId?: string }>)
        .filter(([, op]) => typeof op === 'object' && op?.responses)
        .map(([method, op]) => ({ operation: `${method.toUpperCase()} ${path}`, operationId: op.operationId, statuses: Object.keys(op.responses), errorCodes: op['x-error-codes'] ?? [] })));
    this.operations = new Set(catalog.map((o) => o.operation));
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, `calls-${process.pid}-${randomUUID()}.jsonl`);
    const catalogFile = join(dir, `operations-${process.pid}.json`);
    if (!existsSync(catalogFile)) {
      writeFileSync(`${catalogFile}.tmp`, JSON.stringify(catalog));
      renameSync(`${catalogFile}.tmp`, catalogFile);
    }
  }

  record(method: string, route: string | undefined, status: number, payload: unknown): void {
    const operation = route ? `${method} ${documentPath(route)}` : undefined;
    if (!operation || !this.operations.has(operation)) return; // /docs, unknown routes, HEAD
    let code: string | undefined;
    if (status >= 400 && (typeof payload === 'string' || Buffer.isBuffer(payload))) {
      try {
        code = JSON.parse(String(payload))?.error?.code;
      } catch {
        // not JSON: the contract check reports it
      }
    }
    const line = JSON.stringify({ operation, status, code: typeof code === 'string' ? code : undefined });
    if (this.seen.has(line)) return;
    this.seen.add(line);
    if (this.file) appendFileSync(this.file, `${line}\n`);
  }

  calls(): { operation: string; status: number; code?: string }[] {
    return [...this.seen].map((line) => JSON.parse(line));
  }
}
