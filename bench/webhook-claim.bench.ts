// node --import ./scripts/register-ts.mjs bench/webhook-claim.bench.ts — the delivery worker's claim
// (webhookRepository.claimDue) alone, at volume: BENCH_ENDPOINTS (default 2,010) enabled endpoints (2 per organization) with
// BENCH_DELIVERED (default 50) delivered messages each and 2 due messages on every tenth, and one disabled endpoint
// whose due backlog is older than all of them, grown 0 → 1,000 → 100,000 (BENCH_BACKLOGS). Then one enabled
// endpoint's backlog (10,000, older than all) in place of the disabled one's: the per-endpoint lookup's usual case; the
// same with the pending indexes bloated; and cut to 500 after two bursts of the delivered messages were delivered again
// (analyzed, not vacuumed: the statistics of a queue's partial index, few entries on many pages).
// Per scenario and claim size: the claim's messages rows read and shared buffers (EXPLAIN (ANALYZE, BUFFERS) of the
// statement, rolled back), and its time (BENCH_RUNS runs, each rolled back, as the worker's privileged path runs it:
// role service_role, no JIT). Prints one JSON document; progress goes to stderr. BENCH_PLAN=1 prints the plans too.
//
// BENCH_REPOSITORY=<path> measures another copy of webhook.repository.ts (the claim before a change, say).
// It creates its own database (omnizen_bench_claim_<pid>) on DATABASE_URL's server, migrates it and drops it at the end.
import 'reflect-metadata';
import pg from 'pg';
import { webhookRepository } from '../src/modules/webhooks/webhook.repository.js';
import { MAX_ATTEMPTS } from '../src/modules/webhooks/retry-schedule.js';
import { migrate } from '../src/platform/database/migrator.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';

const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_claim_${process.pid}`;
const ENDPOINTS = 2 * Math.round(Number(process.env.BENCH_ENDPOINTS ?? 2010) / 2);
const DELIVERED = Number(process.env.BENCH_DELIVERED ?? 50);
const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const BACKLOGS = (process.env.BENCH_BACKLOGS ?? '0,1000,100000').split(',').map(Number);
const LIMITS = [50, 13];
const log = (msg: string) => process.stderr.write(`[bench:webhook-claim] ${msg}\n`);
const uuid = (kind: number, i: number | string) => `00000000-0000-4000-${kind}000-${String(i).padStart(12, '0')}`;
const sqlUuid = (kind: number, expr: string) => `('00000000-0000-4000-${kind}000-' || lpad((${expr})::text, 12, '0'))::uuid`;

type Node = { 'Relation Name'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number; 'Rows Removed by Index Recheck'?: number; 'Node Type': string; 'Index Name'?: string; Plans?: Node[] };
/** the messages' rows the plan's scans of core.webhook_messages produced or filtered out, over all their loops */
const rowsRead = (n: Node): number => (n['Relation Name'] === 'webhook_messages'
  ? ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * (n['Actual Loops'] ?? 0) : 0)
  + (n.Plans ?? []).reduce((sum, c) => sum + rowsRead(c), 0);
const scans = (n: Node, out: string[] = []): string[] => {
  if (n['Relation Name'] === 'webhook_messages') out.push(`${n['Node Type']}${n['Index Name'] ? ` ${n['Index Name']}` : ''}: ${(n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0)} x ${n['Actual Loops']}`);
  for (const c of n.Plans ?? []) scans(c, out);
  return out;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const round = (n: number) => Math.round(n * 10) / 10;

async function main() {
  // BENCH_REPOSITORY: another copy of the repository module (an older claim, to compare)
  const repo: typeof webhookRepository = process.env.BENCH_REPOSITORY ? (await import(process.env.BENCH_REPOSITORY)).webhookRepository : webhookRepository;
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await dropDatabasesOfEndedRuns(root, ['omnizen_bench_claim_']);
  await root.query(`CREATE DATABASE "${dbName}"`);
  const url = withDatabase(server, dbName);
  const db = new pg.Client({ connectionString: url });
  try {
    log(`migrating ${dbName}`);
    await migrate(url, { log: () => undefined }); // no apiPassword: the runtime login's password is the server's, shared
    await db.connect();
    const now = new Date(Math.ceil(Date.now() / 1000) * 1000);
    const lease = new Date(now.getTime() + 90_000);

    log(`${ENDPOINTS} enabled endpoints, ${DELIVERED} delivered messages each, 2 due on every tenth`);
    await db.query('SET session_replication_role = replica');
    await db.query(`INSERT INTO core.organizations (id, name, account_type, owner_user_id)
      SELECT ${sqlUuid(8, 'i')}, 'Claim ' || i, 'business', ${sqlUuid(7, '1')} FROM generate_series(0, ${ENDPOINTS / 2}) i`);
    // organization 0: the disabled endpoint (endpoint 0); organizations 1 and on: endpoints 2i-1 and 2i, enabled
    await db.query(`INSERT INTO core.webhook_endpoints (org_id, id, url, secret, enabled, disabled_at, disabled_reason)
      SELECT ${sqlUuid(8, '(i + 1) / 2')}, ${sqlUuid(9, 'i')}, 'https://example.com/hook/' || i, '{}'::jsonb, i > 0,
        CASE WHEN i = 0 THEN $1::timestamptz END, CASE WHEN i = 0 THEN 'failing' END
      FROM generate_series(0, ${ENDPOINTS}) i`, [now]);
    await db.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, status, attempts, next_attempt_at, last_attempt_at, created_at)
      SELECT ${sqlUuid(8, '(i + 1) / 2')}, ${sqlUuid(9, 'i')}, g, 'journal_entry.posted', '{"a":1}', 'succeeded', 1, NULL,
        $1::timestamptz - make_interval(secs => g * 60), $1::timestamptz - make_interval(secs => g * 60)
      FROM generate_series(1, ${ENDPOINTS}) i CROSS JOIN generate_series(1, ${DELIVERED}) g`, [now]);
    await db.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at, created_at)
      SELECT ${sqlUuid(8, '(i + 1) / 2')}, ${sqlUuid(9, 'i')}, 1000000 + g, 'journal_entry.posted', '{"a":1}',
        $1::timestamptz - make_interval(secs => i + g), $1::timestamptz - make_interval(secs => i + g)
      FROM generate_series(10, ${ENDPOINTS}, 10) i CROSS JOIN generate_series(1, 2) g`, [now]);
    await db.query('RESET session_replication_role');

    // the claim's statements: the last is the claim, those before it set it up (its transaction's settings)
    let statements: { text: string; values: unknown[] }[] = [];
    let statementText = '';
    let statementValues: unknown[] = [];
    const capture = { $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
      statements.push({ text: strings.reduce((text, part, i) => `${text}$${i}${part}`), values });
      ({ text: statementText, values: statementValues } = statements.at(-1)!);
      return [];
    } } as unknown as Parameters<typeof repo.claimDue>[0];
    const fair = () => ({ perEndpoint: 13, perOrganization: 25, sending: new Map<string, number>(), sendingByOrg: new Map<string, number>() });
    const inClaimTransaction = async <T>(f: () => Promise<T>): Promise<T> => {
      await db.query(`BEGIN; SELECT set_config('role', 'service_role', true), set_config('jit', 'off', true)`);
      for (const st of statements.slice(0, -1)) await db.query(st.text, st.values);
      try {
        return await f();
      } finally {
        await db.query('ROLLBACK');
      }
    };

    const results: unknown[] = [];
    const measure = async (scenario: string, vacuum: boolean | 'no analyze' = true) => {
      if (!process.env.BENCH_NO_ANALYZE && vacuum !== 'no analyze') await db.query(`${vacuum ? 'VACUUM ' : ''}ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations`);
      for (const limit of LIMITS) {
        statements = [];
        await repo.claimDue(capture, now, lease, limit, MAX_ATTEMPTS, fair());
        const { rows: [{ 'QUERY PLAN': [plan] }] } = await inClaimTransaction(() => db.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statementText}`, statementValues));
        const claimed = (await inClaimTransaction(() => db.query(statementText, statementValues))).rows.length;
        const ms: number[] = [];
        for (let r = 0; r < RUNS; r++) {
          await inClaimTransaction(async () => {
            const t0 = process.hrtime.bigint();
            await db.query(statementText, statementValues);
            ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
          });
        }
        const result = {
          scenario, limit, claimed, messages_rows_read: rowsRead(plan.Plan), shared_buffers: (plan.Plan['Shared Hit Blocks'] ?? 0) + (plan.Plan['Shared Read Blocks'] ?? 0),
          ms: { min: round(Math.min(...ms)), p50: round(pct(ms, 50)), max: round(Math.max(...ms)) }, scans: scans(plan.Plan),
        };
        log(JSON.stringify(result));
        if (process.env.BENCH_PLAN) {
          const { rows } = await inClaimTransaction(() => db.query(`EXPLAIN (ANALYZE, BUFFERS) ${statementText}`, statementValues));
          log(rows.map((r) => r['QUERY PLAN']).join('\n'));
        }
        results.push(result);
      }
    };

    let backlog = 0;
    for (const target of BACKLOGS) {
      if (target > backlog) {
        log(`the disabled endpoint's backlog: ${target} due messages`);
        // due 2 days ago and after, one per second: older than every enabled endpoint's due message
        await db.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, attempts, next_attempt_at, created_at)
          SELECT $2::uuid, $3::uuid, g, 'journal_entry.posted', '{"a":1}', 1, $1::timestamptz - interval '2 days' + make_interval(secs => g), $1::timestamptz - interval '2 days'
          FROM generate_series(${backlog + 1}, ${target}) g`, [now, uuid(8, 0), uuid(9, 0)]);
        backlog = target;
      }
      await measure(`disabled backlog ${backlog}`);
    }
    log('the backlog on an enabled endpoint (10,000 due), no disabled backlog');
    await db.query('DELETE FROM core.webhook_messages WHERE endpoint_id = $1', [uuid(9, 0)]);
    await db.query(`INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at, created_at)
      SELECT $2::uuid, $3::uuid, 2000000 + g, 'journal_entry.posted', '{"a":1}', $1::timestamptz - interval '2 days' + make_interval(secs => g), $1::timestamptz - interval '2 days'
      FROM generate_series(1, 10000) g`, [now, uuid(8, 1), uuid(9, 1)]);
    await measure('enabled backlog 10000');
    // the pending indexes bloated: every delivered message was pending (due) once and was delivered since, not vacuumed
    // (as a worker's claims and recordings leave them between autovacuum runs)
    log('the pending indexes bloated: the delivered messages were all pending once, not vacuumed since');
    await db.query('ALTER TABLE core.webhook_messages SET (autovacuum_enabled = false)');
    await db.query(`UPDATE core.webhook_messages SET status = 'pending', next_attempt_at = $1::timestamptz - interval '3 days' WHERE status = 'succeeded'`, [now]);
    await db.query(`UPDATE core.webhook_messages SET status = 'succeeded', next_attempt_at = NULL WHERE next_attempt_at = $1::timestamptz - interval '3 days'`, [now]);
    await measure('enabled backlog 10000, pending indexes bloated', false);
    // bursts delivered (review rE M2): the delivered messages fanned out again, analyzed while due, delivered, twice;
    // analyzed after the last delivery, not vacuumed (autovacuum off or behind). The partial due indexes keep the pages
    // the bursts grew them to, with few entries counted on them; the enabled backlog cut to 500.
    log('bursts delivered: analyzed while due, delivered, analyzed again (not vacuumed); the enabled backlog cut to 500');
    await db.query(`DELETE FROM core.webhook_messages WHERE endpoint_id = $1 AND event_id > 2000500`, [uuid(9, 1)]);
    for (let burst = 0; burst < 2; burst++) {
      await db.query(`UPDATE core.webhook_messages SET status = 'pending', next_attempt_at = last_attempt_at WHERE status = 'succeeded'`);
      await db.query('VACUUM ANALYZE core.webhook_messages');
      await db.query(`UPDATE core.webhook_messages SET status = 'succeeded', next_attempt_at = NULL WHERE status = 'pending' AND last_attempt_at IS NOT NULL`);
    }
    await db.query('ANALYZE core.webhook_messages, core.webhook_endpoints, core.organizations');
    await measure('enabled backlog 500, bursts delivered (analyzed, not vacuumed)', 'no analyze');
    console.log(JSON.stringify({ benchmark: 'webhook-claim', enabled_endpoints: ENDPOINTS, delivered_per_endpoint: DELIVERED, runs: RUNS, results }, null, 2));
  } finally {
    await db.end().catch(() => undefined);
    await root.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await root.end();
  }
}

main().then(() => process.exit(0)).catch((err) => {
  console.error(err);
  process.exit(1);
});
