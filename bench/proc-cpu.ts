// CPU time of processes of this machine, from /proc (Linux), for the benchmarks' CPU-per-operation figures.
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type pg from 'pg';

const CLOCK_TICKS = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();

/** CPU (user + system, and system alone) a process has used so far, and its name; undefined when unreadable (no /proc, or it ended). */
export function processCpu(pid: string | number | undefined): { name: string; ms: number; sysMs: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [utime, stime] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(11, 13).map(Number);
    return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ms: ((utime + stime) * 1000) / CLOCK_TICKS, sysMs: (stime * 1000) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/**
 * CPU so far of each backend of database `dbName` logged in as the API login (the app's pool and a floor's): other
 * databases' work, background processes and backends elsewhere stay out. Empty when the server's processes are not
 * readable here (another machine).
 */
export async function apiBackendsCpu(admin: pg.Pool | pg.Client, dbName: string): Promise<{ cpu: Map<number, number>; backends: number }> {
  const { rows } = await admin.query(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = 'omnizen_api'`, [dbName]);
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    const p = processCpu(pid);
    if (p?.name.startsWith('postgres')) cpu.set(pid, p.ms);
  }
  return { cpu, backends: rows.length };
}
