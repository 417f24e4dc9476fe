import type { FastifyRequest } from 'fastify';
import type { ErrorEvent } from '@sentry/nestjs';
import type { AppConfig } from '../config/config.js';
import type { Principal } from '../auth/principal.js';

/**
 * Errors to Sentry (`@sentry/nestjs`) when SENTRY_DSN is set: every 5xx answer, tagged with the request id, the
 * principal's kind and the organization id of the route; nothing else of the request. Off, the SDK is not even
 * loaded (dynamic import). Every event passes `scrubEvent` last, so no secret, token, password, cookie,
 * authorization header or request body leaves the process, whatever an integration or a message put in it.
 */
export interface ErrorReporter {
  report(exception: unknown, req: FastifyRequest, status: number): void;
  /** sends what is queued (tests; shutdown) */
  flush(timeoutMs: number): Promise<boolean>;
}

const SCRUBBED = '[scrubbed]';
/** Keys whose values are never sent, wherever they appear in an event. */
const SECRET_KEY = /pass(word|phrase)?|secret|token|authorization|cookie|api[-_]?key|dsn|signature|credential|session|private|otp|code_verifier/i;
/** Secrets inside free text: bearer credentials, JWTs, webhook/Stripe secrets, URLs with a password. */
const SECRET_TEXT: [RegExp, string][] = [
  [/\b(Bearer|Basic)\s+[\w.~+/=-]+/gi, `$1 ${SCRUBBED}`],
  [/\beyJ[\w-]+\.[\w-]+\.[\w-]*/g, SCRUBBED],
  [/\b(whsec|sk_live|sk_test|rk_live|rk_test|pk_live|pk_test|sk-ant|sk)[-_][\w+/=-]{8,}/g, SCRUBBED],
  [/(\w+:\/\/[^:/\s@]+:)[^@\s/]+@/g, `$1${SCRUBBED}@`],
  [/((?:password|secret|token|api[-_]?key)\s*[=:]\s*)\S+/gi, `$1${SCRUBBED}`],
];

export function scrubText(text: string): string {
  return SECRET_TEXT.reduce((s, [pattern, replacement]) => s.replace(pattern, replacement), text);
}

function scrubValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) ? SCRUBBED : scrubValue(v, depth + 1)]));
}

/**
 * Sentry's `beforeSend`: the request is reduced to its method and path (no headers, cookies, query string or body),
 * no user but an id, no breadcrumbs (they may quote log lines), secret-named keys blanked and secret-looking text
 * replaced everywhere else.
 */
export function scrubEvent<E extends ErrorEvent>(event: E): E {
  if (event.request) event.request = { method: event.request.method, url: event.request.url?.split('?')[0] };
  if (event.user) event.user = event.user.id ? { id: event.user.id } : {};
  delete event.breadcrumbs;
  return scrubValue(event) as E;
}

/** The reporter startErrorReporting returned last (one per process but in tests): what the shutdown flushes. */
let active: ErrorReporter | null = null;

/**
 * Sends the events still queued, waiting `timeoutMs` at most (at shutdown, before process.exit drops them); false when
 * some were left; true at once without a reporter.
 */
export async function flushErrorReporting(timeoutMs: number): Promise<boolean> {
  return active ? active.flush(timeoutMs).catch(() => false) : true;
}

/** The Sentry reporter when SENTRY_DSN is configured (the SDK is initialized once per process); null otherwise. */
export async function startErrorReporting(config: AppConfig): Promise<ErrorReporter | null> {
  const sentry = config.observability.sentry;
  if (!sentry) return null;
  active = await sentryReporter(sentry);
  return active;
}

async function sentryReporter(sentry: NonNullable<AppConfig['observability']['sentry']>): Promise<ErrorReporter> {
  const Sentry = await import('@sentry/nestjs');
  if (!Sentry.getClient()) {
    Sentry.init({
      dsn: sentry.dsn,
      environment: sentry.environment,
      // errors only: traces are OpenTelemetry's (tracing.ts); no integration that reads requests, consoles or logs
      defaultIntegrations: false,
      enableRuntimeChannelInjection: false,
      integrations: [Sentry.linkedErrorsIntegration(), Sentry.dedupeIntegration()],
      beforeSend: (event) => scrubEvent(event),
      beforeBreadcrumb: () => null,
    });
  }
  return {
    report(exception, req, status) {
      const principal = (req as FastifyRequest & { user?: Principal }).user;
      const orgId = (req.params as Record<string, string> | undefined)?.orgId;
      Sentry.withScope((scope) => {
        scope.setTags({
          request_id: req.id,
          principal_kind: principal?.kind ?? 'anonymous',
          ...(orgId ? { org_id: orgId } : {}),
          status: String(status),
        });
        scope.setContext('request', { method: req.method, route: req.routeOptions?.url ?? null });
        Sentry.captureException(exception);
      });
    },
    flush: (timeoutMs) => Sentry.flush(timeoutMs),
  };
}
