// What the typed query builder costs the API process: compiling a query (Kysely → SQL text and
// parameters) per call, against the tagged-template SQL it replaces, which only joins strings.
// The statement PostgreSQL receives is the same either way, so the database's share does not move;
// this measures the app's CPU per query in isolation: built per call, prepared (compiled once, see
// `prepare`), and the template. Prints JSON.
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { prepare, qb } from '../src/platform/database/query-builder.js';

const ORG = '00000000-0000-4000-8000-000000000001';
const N = Number(process.env.BENCH_QB_ITERATIONS ?? 200_000);

function template(strings: TemplateStringsArray, ...values: unknown[]) {
  let text = strings[0];
  for (let i = 1; i < strings.length; i++) text += `$${i}${strings[i]}`;
  return { text, values };
}

const preparedByKey = prepare((p: { id: string }) => qb.selectFrom('core.organizations').select(['id', 'name', 'account_type', 'domain']).where('id', '=', p.id));
const preparedJoin = prepare((p: { org: string; app: string }) => qb.selectFrom('hub.Subscription as s').leftJoin('hub.subscription_billing as b', 'b.subscription_id', 's.id')
  .select(['s.id', 's.userId', 's.organizationId', 's.appId', 's.plan', 's.status', 'b.stripe_customer_id', 'b.trial_ends_at',
    'b.current_period_end', (eb) => eb.fn.coalesce('b.cancel_at_period_end', sql<boolean>`false`).as('cancel'), 'b.last_event_at'])
  .where('s.appId', '=', p.app).where('s.organizationId', '=', p.org));

const cases: Record<string, () => unknown> = {
  // a one-table read by key (the most common repository call)
  'select_by_key.builder': () => qb.selectFrom('core.organizations').select(['id', 'name', 'account_type', 'domain']).where('id', '=', ORG).compile(),
  'select_by_key.prepared': () => preparedByKey({ id: ORG }).compile(),
  'select_by_key.template': () => template`SELECT id, name, account_type, domain FROM core.organizations WHERE id = ${ORG}::uuid`,
  // the billing subscription read: a join, eleven columns, two conditions
  'subscription_join.builder': () => qb.selectFrom('hub.Subscription as s').leftJoin('hub.subscription_billing as b', 'b.subscription_id', 's.id')
    .select(['s.id', 's.userId', 's.organizationId', 's.appId', 's.plan', 's.status', 'b.stripe_customer_id', 'b.trial_ends_at',
      'b.current_period_end', (eb) => eb.fn.coalesce('b.cancel_at_period_end', sql<boolean>`false`).as('cancel'), 'b.last_event_at'])
    .where('s.appId', '=', 'omnizen').where('s.organizationId', '=', ORG).compile(),
  'subscription_join.prepared': () => preparedJoin({ org: ORG, app: 'omnizen' }).compile(),
  'subscription_join.template': () => template`SELECT s.id, s."userId", s."organizationId", s."appId", s.plan, s.status, b.stripe_customer_id,
    b.trial_ends_at, b.current_period_end, coalesce(b.cancel_at_period_end, false) AS cancel, b.last_event_at
    FROM hub."Subscription" s LEFT JOIN hub.subscription_billing b ON b.subscription_id = s.id
    WHERE s."appId" = ${'omnizen'} AND s."organizationId" = ${ORG}`,
  // an upsert with an ON CONFLICT update
  'upsert.builder': () => qb.insertInto('hub.limit_locks').values({ org_id: ORG, app_id: 'omnizen' }).onConflict((c) => c.doNothing()).compile(),
  'upsert.template': () => template`INSERT INTO hub.limit_locks (org_id, app_id) VALUES (${ORG}::uuid, ${'omnizen'}) ON CONFLICT DO NOTHING`,
};

const result: Record<string, { us_per_query: number }> = {};
for (const [name, run] of Object.entries(cases)) {
  for (let i = 0; i < N / 10; i++) run(); // warm-up: JIT
  const t0 = performance.now();
  for (let i = 0; i < N; i++) run();
  result[name] = { us_per_query: Math.round(((performance.now() - t0) * 1000 / N) * 100) / 100 };
}
console.log(JSON.stringify({ iterations: N, node: process.version, ...result }, null, 2));
