import type pg from 'pg';
import { webhookRepository as repo } from '../../src/modules/webhooks/webhook.repository.js';
import type { TestApp } from '../support/app.js';

/** A node of a plan EXPLAIN answered in JSON, with what the claim tests read of it. */
export type PlanNode = {
  'Relation Name'?: string; 'Index Name'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number; 'Rows Removed by Filter'?: number;
  'Shared Hit Blocks'?: number; 'Shared Read Blocks'?: number; Plans?: PlanNode[];
};

/** The node and every node below it. */
export const planNodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(planNodes)];

/** The messages' rows the plan's scans read (returned or filtered out), over all their loops. */
export const messagesRead = (n: PlanNode): number => (n['Relation Name'] === 'webhook_messages' && !n.Plans?.length
  ? ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0)) * (n['Actual Loops'] ?? 0) : 0) + (n.Plans ?? []).reduce((sum, p) => sum + messagesRead(p), 0);

/**
 * The claim's statements (webhookRepository.claimDue with `args`) run as the delivery worker runs them (role service_role
 * and no JIT, as PrivilegedDatabase.run sets; the claim's own transaction settings, then `settings`), the last under
 * EXPLAIN (ANALYZE`, BUFFERS` with `buffers`), and rolled back: its plan.
 */
export async function explainClaim(t: TestApp, args: Parameters<typeof repo.claimDue> extends [unknown, ...infer A] ? A : never,
  options: { settings?: string; buffers?: boolean } = {}): Promise<PlanNode> {
  const statements: { text: string; values: unknown[] }[] = [];
  const capture = { $queryRaw: async (strings: TemplateStringsArray, ...values: unknown[]) => {
    statements.push({ text: strings.reduce((text, part, i) => `${text}$${i}${part}`), values });
    return [];
  } } as unknown as Parameters<typeof repo.claimDue>[0];
  await repo.claimDue(capture, ...args);
  const c: pg.PoolClient = await t.db.admin.connect();
  try {
    await c.query(`BEGIN; SELECT set_config('role', 'service_role', true), set_config('jit', 'off', true)`);
    for (const st of statements.slice(0, -1)) await c.query(st.text, st.values);
    if (options.settings) await c.query(options.settings);
    const claim = statements.at(-1)!;
    const { rows: [{ 'QUERY PLAN': [{ Plan: plan }] }] } = await c.query(`EXPLAIN (ANALYZE, ${options.buffers ? 'BUFFERS, ' : ''}FORMAT JSON) ${claim.text}`, claim.values);
    return plan as PlanNode;
  } finally {
    await c.query('ROLLBACK');
    c.release();
  }
}

/** A claim's time, the next whole second a minute ahead (after every message a setup dates before it), and its lease. */
export function claimTimes(): { now: Date; lease: Date } {
  const now = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000);
  return { now, lease: new Date(now.getTime() + 90_000) };
}

/** A setup row's uuid (kind 8: an organization, 9: an endpoint) numbered `i`; `sqlTestId`: the same computed in SQL from `expr`. */
export const testId = (kind: number, i: number) => `00000000-0000-4000-${kind}000-${String(i).padStart(12, '0')}`;
export const sqlTestId = (kind: number, expr: string) => `('00000000-0000-4000-${kind}000-' || lpad((${expr})::text, 12, '0'))::uuid`;

/** The fair shares of a worker sending nothing yet. */
export const idleFairShare = (perEndpoint: number, perOrganization: number) =>
  ({ perEndpoint, perOrganization, sending: new Map<string, number>(), sendingByOrg: new Map<string, number>() });
