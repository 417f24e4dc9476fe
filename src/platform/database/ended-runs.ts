import type pg from 'pg';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Drops the throwaway databases (`<prefix><pid>...`) of test and benchmark runs whose process has
 * ended: a run killed before it could drop its own. Databases of runs still alive (this one included)
 * are left alone. Prefixes are constants of our own tooling, never input.
 */
export async function dropDatabasesOfEndedRuns(client: pg.Client, prefixes: string[]): Promise<void> {
  const pattern = `^(${prefixes.join('|')})([0-9]+)`;
  const { rows } = await client.query<{ datname: string; pid: string }>(
    `SELECT datname, (regexp_match(datname, $1))[2] AS pid FROM pg_database WHERE datname ~ $1`, [pattern]);
  for (const { datname, pid } of rows) {
    if (!alive(Number(pid))) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => undefined);
  }
}
