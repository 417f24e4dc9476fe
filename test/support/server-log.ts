import type { DestinationStream } from 'pino';

/**
 * What a test application logged about the requests it failed, by request id: the error filter's lines (an unhandled
 * error's name, message and stack; a 503's cause), so that the contract check can put them into the violation of a 5xx
 * (ResponseContract.attach). Without it a 500 in a test says only "status 500 is not documented": the test log level is
 * silent, and what the server threw was nowhere. Kept per test file (module state), not per application: Nest's Logger
 * is one for the process, so an application's error filter writes through the logger of the application booted last.
 */
const byRequest = new Map<string, string[]>();

/** Lines kept for requests never answered through the contract's hook (a line logged after the answer): a bound. */
const MAX_REQUESTS = 500;

/** pino's level numbers: warn (a 503's cause) and above are kept. */
const WARN = 40;

/**
 * A pino destination for a test application: every line goes on to `inner` (the test's own destination, or stdout
 * when LOG_LEVEL asked for lines), and the warnings and errors that name a request id are kept for `serverLogOf`.
 */
export function serverLogDestination(inner: DestinationStream | undefined): DestinationStream {
  return {
    write(line: string) {
      inner?.write(line);
      if (line.includes('"requestId"')) keep(line);
    },
  };
}

/** What was logged about request `requestId` at warn or above, once (it is forgotten then), or undefined. */
export function serverLogOf(requestId: string): string | undefined {
  const lines = byRequest.get(requestId);
  if (!lines) return undefined;
  byRequest.delete(requestId);
  return lines.join('\n');
}

function keep(line: string): void {
  let entry: { level?: number; requestId?: unknown; msg?: string; err?: unknown; cause?: unknown; code?: unknown };
  try {
    entry = JSON.parse(line);
  } catch {
    return;
  }
  if (typeof entry.requestId !== 'string' || (entry.level ?? 0) < WARN) return;
  const lines = byRequest.get(entry.requestId) ?? [];
  if (lines.length === 0) {
    if (byRequest.size >= MAX_REQUESTS) byRequest.delete(byRequest.keys().next().value!);
    byRequest.set(entry.requestId, lines);
  }
  lines.push(describe(entry));
}

/** `unhandled error: TypeError: boom` and its stack; `service unavailable (database_unavailable): <cause>`. */
function describe(entry: { msg?: string; err?: unknown; cause?: unknown; code?: unknown }): string {
  const head = `${entry.msg ?? ''}${typeof entry.code === 'string' ? ` (${entry.code})` : ''}`;
  const err = entry.err as { name?: string; type?: string; message?: string; stack?: string } | string | undefined;
  if (err && typeof err === 'object') {
    const title = `${err.name ?? err.type ?? 'Error'}: ${err.message ?? ''}`;
    // a stack starts with its error's name and message, unless either was changed after it was taken
    const stack = err.stack?.startsWith(title) ? err.stack.slice(title.length) : err.stack ? `\n${err.stack}` : '';
    return `${head}: ${title}${stack}`;
  }
  if (err !== undefined) return `${head}: ${String(err)}`;
  if (entry.cause !== undefined) return `${head}: ${String(entry.cause)}`;
  return head;
}
