import { Decimal } from '../../platform/decimal.js';
import { sql, type Selectable } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { exactInstant, qb, type DB } from '../../platform/database/query-builder.js';
import type { AgentDto, BudgetDto, EmbeddingUsageRowDto, ModelDto, ProviderKeyDto, RunDto, RunStepDto, UsageRowDto } from './agents.dto.js';
import { organizationDeleted } from '../organizations/organization.repository.js';
import { DEFAULT_INPUT_MARGIN, type InputMargin } from './cost.js';

// The only place with SQL of the agents module: typed queries (Kysely) on schema ai, raw SQL for the budget
// functions and the usage report. Money is numeric (Decimal), never a float.

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
const num = (v: bigint | number | string | null | undefined) => (v === null || v === undefined ? 0 : Number(v));
const dec = (v: Decimal | string | number | null | undefined) => (v === null || v === undefined ? '0' : new Decimal(v.toString()).toFixed(8));

const toAgent = (r: Selectable<DB['ai.agents']>): AgentDto => ({
  id: r.id, name: r.name, type: r.type, instructions: r.instructions, modelId: r.model_id, temperature: Number(r.temperature),
  maxOutputTokens: r.max_output_tokens, maxSteps: r.max_steps, tools: r.tools, knowledgeCollectionIds: r.knowledge_collection_ids,
  status: r.status, workspaceId: r.workspace_id, createdBy: r.created_by, createdAt: iso(r.created_at)!, updatedAt: iso(r.updated_at)!,
});

export const toRun = (r: Selectable<DB['ai.runs']>): RunDto => ({
  id: r.id, agentId: r.agent_id, modelId: r.model_id, startedBy: r.started_by, apiKeyId: r.api_key_id ?? null, trigger: r.trigger, status: r.status, output: r.output,
  stopReason: r.stop_reason, errorClass: r.error_class, errorMessage: r.error_message,
  usage: { inputTokens: num(r.input_tokens), outputTokens: num(r.output_tokens), cachedInputTokens: num(r.cached_input_tokens), cacheWriteTokens: num(r.cache_write_tokens) },
  cost: dec(r.cost), steps: r.steps, startedAt: iso(r.started_at)!, finishedAt: iso(r.finished_at), latencyMs: r.latency_ms,
});

const toStep = (r: Selectable<DB['ai.run_steps']>): RunStepDto => ({
  stepNo: r.step_no, kind: r.kind, name: r.name, status: r.status, errorClass: r.error_class, errorMessage: r.error_message,
  startedAt: iso(r.started_at)!, endedAt: iso(r.ended_at)!, latencyMs: r.latency_ms, timeToFirstTokenMs: r.time_to_first_token_ms,
  streamed: r.streamed, attempts: r.attempts,
  usage: { inputTokens: num(r.input_tokens), outputTokens: num(r.output_tokens), cachedInputTokens: num(r.cached_input_tokens), cacheWriteTokens: num(r.cache_write_tokens) },
  tokensCounted: r.tokens_counted, cost: dec(r.cost), prices: r.prices as RunStepDto['prices'], detail: r.detail as RunStepDto['detail'],
});

/**
 * A run whose content a person's erasure took: its input is '{}' (personal-data.catalog's ai.runs; a run is created with
 * its messages). The erasure cancelled it if it was running: a late LLM call's step on it stores no content.
 */
const ERASED = sql<boolean>`input = '{}'::jsonb`.as('erased');

/** A run's status and counters (RunDto's), as a step leaves them. */
export type RunTotals = Pick<RunDto, 'status' | 'errorClass' | 'cost' | 'steps' | 'usage'>;

export interface Prices {
  input: Decimal;
  output: Decimal;
  cachedInput: Decimal;
  cacheWrite: Decimal;
  effectiveFrom: string;
}

export interface StepRow {
  stepNo: number;
  kind: 'llm_call' | 'tool_call' | 'retrieval';
  name: string;
  status: 'succeeded' | 'failed';
  errorClass?: string | null;
  errorMessage?: string | null;
  startedAt: Date;
  endedAt: Date;
  timeToFirstTokenMs?: number | null;
  streamed?: boolean;
  attempts?: number;
  usage?: { input: number; output: number; cachedInput: number; cacheWrite: number };
  tokensCounted?: boolean;
  cost?: Decimal;
  prices?: Record<string, string> | null;
  detail: Record<string, unknown>;
}

export interface RunFinish {
  status: 'succeeded' | 'failed' | 'cancelled';
  output: string | null;
  stopReason: 'answer' | 'max_steps' | 'error' | 'cancelled';
  errorClass: string | null;
  errorMessage: string | null;
  finishedAt: Date;
}

export const agentsRepository = {
  // ---------------------------------------------------------------- catalog
  async models(db: Db): Promise<ModelDto[]> {
    const [models, prices] = await Promise.all([
      db.run(qb.selectFrom('ai.models').selectAll().orderBy('id')),
      db.run(qb.selectFrom('ai.model_prices').selectAll().orderBy('model_id').orderBy('effective_from', 'desc')),
    ]);
    return models.map((m) => ({
      id: m.id, provider: m.provider, displayName: m.display_name, kind: m.kind, contextWindow: m.context_window, maxOutputTokens: m.max_output_tokens, reasoning: m.reasoning,
      prices: prices.filter((p) => p.model_id === m.id).map((p) => ({
        effectiveFrom: iso(p.effective_from)!, input: p.input.toFixed(6), output: p.output.toFixed(6), cachedInput: p.cached_input.toFixed(6),
        cacheWrite: p.cache_write.toFixed(6), source: p.source,
      })),
    }));
  },

  async chatModel(db: Db, id: string): Promise<{ id: string; maxOutputTokens: number } | undefined> {
    const [m] = await db.run(qb.selectFrom('ai.models').select(['id', 'max_output_tokens']).where('id', '=', id).where('kind', '=', 'chat'));
    return m && { id: m.id, maxOutputTokens: m.max_output_tokens };
  },

  /**
   * What a run needs of its model's catalog entry: whether it is a reasoning model (asked for max_completion_tokens and
   * no temperature), the margin its input is reserved with, and every price, the latest first (past, current and announced ones): the runs' in-process copy.
   */
  async modelForRuns(db: Db, modelId: string): Promise<{ reasoning: boolean; margin: InputMargin; prices: Prices[] }> {
    const [models, rows] = await Promise.all([
      db.run(qb.selectFrom('ai.models').select(['reasoning', 'input_token_factor', 'input_token_overhead']).where('id', '=', modelId)),
      db.run(qb.selectFrom('ai.model_prices').selectAll().where('model_id', '=', modelId).orderBy('effective_from', 'desc')),
    ]);
    const m = models[0];
    return {
      reasoning: m?.reasoning ?? false,
      // a model outside the catalog: the conservative default
      margin: m ? { factor: new Decimal(m.input_token_factor.toString()), overhead: m.input_token_overhead } : DEFAULT_INPUT_MARGIN,
      prices: rows.map((p) => ({ input: p.input, output: p.output, cachedInput: p.cached_input, cacheWrite: p.cache_write, effectiveFrom: iso(p.effective_from)! })),
    };
  },

  /**
   * Privileged: the secret hash of the organization's API key `keyId` (revoked or expired too: begin_key_request refuses
   * those), for the job of a run the key started (its payload holds the key's id only).
   */
  async apiKeySecretHash(db: Db, orgId: string, keyId: string): Promise<string | undefined> {
    const [k] = await db.run(qb.selectFrom('core.api_keys').select('secret_hash').where('org_id', '=', orgId).where('id', '=', keyId));
    return k?.secret_hash;
  },

  /**
   * Privileged: who started the run `runId` as its row records it, for its job to check the starter its payload names
   * (runJob): the person (started_by), the API key (api_key_id), or, both null, the actor of its ai.run_started audit
   * row when a service started it (`service:<name>`; written in the transaction that created the run). Undefined when
   * there is no such run.
   */
  async runStarter(db: Db, orgId: string, runId: string): Promise<{ startedBy: string | null; apiKeyId: string | null; service: string | null } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs as r')
      .select(['r.started_by', 'r.api_key_id'])
      .select((eb) => eb.selectFrom('core.audit_logs as a').select('a.actor_id')
        .where('a.org_id', '=', orgId).where('a.entity_type', '=', 'ai_run').where('a.entity_id', '=', runId)
        .where('a.action', '=', 'ai.run_started').where('a.principal_type', '=', 'service')
        .orderBy('a.id').limit(1).as('service'))
      .where('r.org_id', '=', orgId).where('r.id', '=', runId));
    return r && { startedBy: r.started_by, apiKeyId: r.api_key_id ?? null, service: r.service ?? null };
  },

  // ---------------------------------------------------------------- agents
  async countAgents(db: Db): Promise<number> {
    // RLS keeps it to the request's organization
    const [r] = await db.run(qb.selectFrom('ai.agents').select((eb) => eb.fn.countAll<bigint>().as('n')));
    return Number(r.n);
  },

  async listAgents(db: Db, orgId: string): Promise<AgentDto[]> {
    return (await db.run(qb.selectFrom('ai.agents').selectAll().where('org_id', '=', orgId).orderBy('name'))).map(toAgent);
  },

  async getAgent(db: Db, orgId: string, id: string): Promise<AgentDto | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.agents').selectAll().where('org_id', '=', orgId).where('id', '=', id));
    return r && toAgent(r);
  },

  async createAgent(db: Db, orgId: string, createdBy: string | null, a: {
    name: string; type: string; instructions: string; modelId: string; temperature: number; maxOutputTokens: number; maxSteps: number;
    tools: string[]; knowledgeCollectionIds: string[]; status: string; workspaceId: string | null;
  }): Promise<AgentDto> {
    const [r] = await db.run(qb.insertInto('ai.agents').values({
      org_id: orgId, name: a.name, type: a.type, instructions: a.instructions, model_id: a.modelId, temperature: new Decimal(a.temperature),
      max_output_tokens: a.maxOutputTokens, max_steps: a.maxSteps, tools: a.tools, knowledge_collection_ids: a.knowledgeCollectionIds,
      status: a.status, workspace_id: a.workspaceId, created_by: createdBy,
    }).returningAll());
    return toAgent(r);
  },

  async updateAgent(db: Db, orgId: string, id: string, p: Partial<{
    name: string; instructions: string; modelId: string; temperature: number; maxOutputTokens: number; maxSteps: number; tools: string[];
    knowledgeCollectionIds: string[]; status: string;
  }>): Promise<AgentDto | undefined> {
    const [r] = await db.run(qb.updateTable('ai.agents').set({
      ...(p.name !== undefined ? { name: p.name } : {}),
      ...(p.instructions !== undefined ? { instructions: p.instructions } : {}),
      ...(p.modelId !== undefined ? { model_id: p.modelId } : {}),
      ...(p.temperature !== undefined ? { temperature: new Decimal(p.temperature) } : {}),
      ...(p.maxOutputTokens !== undefined ? { max_output_tokens: p.maxOutputTokens } : {}),
      ...(p.maxSteps !== undefined ? { max_steps: p.maxSteps } : {}),
      ...(p.tools !== undefined ? { tools: p.tools } : {}),
      ...(p.knowledgeCollectionIds !== undefined ? { knowledge_collection_ids: p.knowledgeCollectionIds } : {}),
      ...(p.status !== undefined ? { status: p.status } : {}),
      updated_at: sql`now()`,
    }).where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return r && toAgent(r);
  },

  /**
   * Locks the agent (a run started meanwhile commits first: its insert holds the agent's key) and counts its runs whose
   * execution may still write: running, or cancelled while an LLM call was in flight whose step is not stored yet (the
   * cancel's mark, call_in_flight_until, still ahead of `now`: past it the execution is taken for dead).
   */
  async lockAgentRunsInFlight(db: Db, orgId: string, id: string, now: Date): Promise<number> {
    await db.run(qb.selectFrom('ai.agents').select('id').where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    const [r] = await db.run(qb.selectFrom('ai.runs').select(sql<string>`count(*)`.as('n')).where('org_id', '=', orgId).where('agent_id', '=', id)
      .where(sql<boolean>`(status = 'running' OR (call_in_flight_until > finished_at AND call_in_flight_until > ${now}::timestamptz))`));
    return Number(r?.n ?? 0);
  },

  async deleteAgent(db: Db, orgId: string, id: string): Promise<number> {
    return db.runCount(qb.deleteFrom('ai.agents').where('org_id', '=', orgId).where('id', '=', id));
  },

  // ---------------------------------------------------------------- runs
  /**
   * `leaseUntil`: the run's lease, held by the instance that executes it at once (null: a job will take it, takeRun; not
   * taken by long after it started, the sweep fails it: lostRuns).
   */
  async createRun(db: Db, orgId: string, r: {
    agentId: string; modelId: string; startedBy: string | null; trigger: string; input: unknown; startedAt: Date; leaseUntil: Date | null;
  }): Promise<RunDto> {
    const [row] = await db.run(qb.insertInto('ai.runs').values({
      org_id: orgId, agent_id: r.agentId, model_id: r.modelId, started_by: r.startedBy, trigger: r.trigger, input: JSON.stringify(r.input), started_at: r.startedAt,
      lease_until: r.leaseUntil,
    }).returningAll());
    return toRun(row);
  },

  /**
   * A job takes its run: the lease, until `until`, of a running run no instance holds (not taken yet, or released by a
   * delivery whose execution failed: releaseRun); false otherwise (finished, or taken by an earlier delivery of the job:
   * executing elsewhere, or lost, which the sweep finishes).
   */
  async takeRun(db: Db, orgId: string, id: string, until: Date): Promise<boolean> {
    return (await db.runCount(qb.updateTable('ai.runs').set({ lease_until: until })
      .where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'running').where('lease_until', 'is', null))) > 0;
  },

  /**
   * Releases the lease of a running run whose execution here failed with an unexpected error (a database error): its job's
   * retry takes it again (takeRun), which a lease held to its end would refuse. Answers the call id of the LLM call it had in
   * flight (its budget reservation, for the caller to release; null: none), or undefined when the run is not running and
   * leased any more (finished meanwhile: a cancel, the sweep). Only the execution holding the lease calls it: a run is
   * taken only while unleased, so no other execution holds it.
   */
  async releaseRun(db: Db, orgId: string, id: string): Promise<{ callId: string | null } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs').select('call_in_flight_id')
      .where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'running').where('lease_until', 'is not', null).forUpdate());
    if (!r) return undefined;
    await db.run(qb.updateTable('ai.runs').set({ lease_until: null, call_in_flight_until: null, call_in_flight_id: null })
      .where('org_id', '=', orgId).where('id', '=', id));
    return { callId: r.call_in_flight_id };
  },

  /**
   * Locks a run whose execution failed (an unexpected error), for it to settle the LLM call it had in flight: answers the
   * call id the run is marked with (its budget reservation; null: none), its status, whether it was cancelled while that
   * call was in flight (as lockRun) and, finished (cancelled, or failed by the sweep: worker_lost), whether step `stepNo`
   * (the call's, as its execution numbered it) is stored; undefined when the run is neither running, cancelled nor swept. A
   * running run's mark is cleared when the call's step is stored; a cancelled run keeps it (it never changes once finished,
   * but for its counters), hence the step; the sweep cleared it (it settled the call's reservation at nothing). Only the
   * run's execution adds steps: the step read after the lock stays as read.
   */
  async lockCallInFlight(db: Db, orgId: string, id: string, stepNo: number | null):
  Promise<{ callId: string | null; status: 'running' | 'cancelled' | 'swept'; cancelledMidCall: boolean; stepStored: boolean; erased: boolean } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs')
      .select(['call_in_flight_id', 'status', sql<boolean>`coalesce(status = 'cancelled' AND call_in_flight_until > finished_at, false)`.as('cancelled_mid_call'), ERASED])
      .where('org_id', '=', orgId).where('id', '=', id)
      .where((eb) => eb.or([eb('status', 'in', ['running', 'cancelled']), eb.and([eb('status', '=', 'failed'), eb('error_class', '=', 'worker_lost')])]))
      .forUpdate());
    if (!r) return undefined;
    const status = r.status === 'failed' ? 'swept' as const : r.status as 'running' | 'cancelled';
    const stepStored = status !== 'running' && stepNo !== null && (await db.run(qb.selectFrom('ai.run_steps').select('step_no')
      .where('org_id', '=', orgId).where('run_id', '=', id).where('step_no', '=', stepNo))).length > 0;
    return { callId: r.call_in_flight_id, status, cancelledMidCall: r.cancelled_mid_call, stepStored, erased: r.erased };
  },

  async getRun(db: Db, orgId: string, agentId: string, id: string): Promise<RunDto | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs').selectAll().where('org_id', '=', orgId).where('agent_id', '=', agentId).where('id', '=', id));
    return r && toRun(r);
  },

  /** The input messages of a run, as the provider takes them. */
  async runInput(db: Db, orgId: string, id: string): Promise<{ role: 'user' | 'assistant'; content: string }[]> {
    const [r] = await db.run(qb.selectFrom('ai.runs').select('input').where('org_id', '=', orgId).where('id', '=', id));
    const messages = ((r?.input as { messages?: { role: 'user' | 'assistant'; content: string }[] } | undefined)?.messages ?? []);
    return messages.map((m) => ({ role: m.role, content: m.content }));
  },

  /** Locks a running run (a concurrent cancel waits, or has won): false when it is no longer running. */
  async lockRunning(db: Db, orgId: string, id: string): Promise<boolean> {
    return (await this.lockRun(db, orgId, id))?.status === 'running';
  },

  /**
   * Locks the run and answers its status and error class (undefined: no such run), whether it was cancelled while an
   * LLM call of its execution was in flight (the cancel then left the run's event to the execution), and whether a
   * person's erasure took its content (ERASED).
   */
  async lockRun(db: Db, orgId: string, id: string): Promise<{ status: string; errorClass: string | null; cancelledMidCall: boolean; erased: boolean } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs')
      .select(['status', 'error_class', sql<boolean>`coalesce(status = 'cancelled' AND call_in_flight_until > finished_at, false)`.as('cancelled_mid_call'), ERASED])
      .where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    return r && { status: r.status, errorClass: r.error_class, cancelledMidCall: r.cancelled_mid_call, erased: r.erased };
  },

  /**
   * Marks a running run's LLM call (`callId`: its budget reservation's) as in flight until `until` at the latest, the run's
   * lease with it (cleared, renewed, by addStep); false when the run is no longer running (a cancel has committed, or the
   * sweep). The row stays locked to the end of the transaction.
   */
  async startCall(db: Db, orgId: string, id: string, callId: string, until: Date): Promise<boolean> {
    return (await db.runCount(qb.updateTable('ai.runs').set({ call_in_flight_until: until, call_in_flight_id: callId, lease_until: until })
      .where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'running'))) > 0;
  },

  /**
   * Locks the run, for its cancel, and answers it with the end of the LLM call it has in flight (null: none) and that call's
   * id (its budget reservation; null: none), or undefined when the caller does not see it.
   */
  async lockRunForCancel(db: Db, orgId: string, agentId: string, id: string):
  Promise<{ run: RunDto; callInFlightUntil: Date | null; callInFlightId: string | null } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs').selectAll().where('org_id', '=', orgId).where('agent_id', '=', agentId).where('id', '=', id).forUpdate());
    return r && { run: toRun(r), callInFlightUntil: r.call_in_flight_until === null ? null : new Date(r.call_in_flight_until), callInFlightId: r.call_in_flight_id };
  },

  /**
   * Newest first, `limit` rows; `key` is each run's keyset position (started_at to the microsecond, id). `apiKeyId`: the
   * verified key asking, which sees only its runs (runs_read decides; the condition lets runs_api_key_idx find them).
   */
  async listRuns(db: Db, orgId: string, agentId: string, f: { status?: string; trigger?: string; after?: { s: string; i: string }; limit: number; apiKeyId?: string }) {
    let q = qb.selectFrom('ai.runs').selectAll().select(exactInstant('started_at').as('position')).where('org_id', '=', orgId).where('agent_id', '=', agentId);
    if (f.apiKeyId) q = q.where('api_key_id', '=', f.apiKeyId);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.trigger) q = q.where('trigger', '=', f.trigger);
    if (f.after) q = q.where(sql<boolean>`(started_at, id) < (${f.after.s}::timestamptz, ${f.after.i}::uuid)`);
    const rows = await db.run(q.orderBy('started_at', 'desc').orderBy('id', 'desc').limit(f.limit));
    return rows.map(({ position, ...r }) => ({ run: toRun(r), key: { s: position, i: r.id } }));
  },

  async steps(db: Db, orgId: string, runId: string): Promise<RunStepDto[]> {
    return (await db.run(qb.selectFrom('ai.run_steps').selectAll().where('org_id', '=', orgId).where('run_id', '=', runId).orderBy('step_no'))).map(toStep);
  },

  /**
   * Adds a step and its tokens and cost to the run (refused by the database once the run is finished, but the LLM call of a
   * run cancelled, or failed by the sweep (worker_lost), while it was in flight); a running run's lease is renewed until
   * `leaseUntil`. Answers the run's status and counters as the step leaves them (a late call on a finished run is audited
   * with them: RunsService.storeCallStep).
   */
  async addStep(db: Db, orgId: string, runId: string, s: StepRow, leaseUntil: Date): Promise<RunTotals> {
    const u = s.usage ?? { input: 0, output: 0, cachedInput: 0, cacheWrite: 0 };
    const cost = s.cost ?? new Decimal(0);
    await db.run(qb.insertInto('ai.run_steps').values({
      org_id: orgId, run_id: runId, step_no: s.stepNo, kind: s.kind, name: s.name, status: s.status, error_class: s.errorClass ?? null,
      error_message: s.errorMessage ?? null, started_at: s.startedAt, ended_at: s.endedAt,
      latency_ms: Math.max(0, Math.round(s.endedAt.getTime() - s.startedAt.getTime())), time_to_first_token_ms: s.timeToFirstTokenMs ?? null,
      streamed: s.streamed ?? false, attempts: s.attempts ?? 1, input_tokens: BigInt(u.input), output_tokens: BigInt(u.output),
      cached_input_tokens: BigInt(u.cachedInput), cache_write_tokens: BigInt(u.cacheWrite), tokens_counted: s.tokensCounted ?? false, cost,
      prices: s.prices ? JSON.stringify(s.prices) : null, detail: JSON.stringify(s.detail),
    }));
    const [r] = await db.run(qb.updateTable('ai.runs').set((eb) => ({
      input_tokens: eb('input_tokens', '+', BigInt(u.input)), output_tokens: eb('output_tokens', '+', BigInt(u.output)),
      cached_input_tokens: eb('cached_input_tokens', '+', BigInt(u.cachedInput)), cache_write_tokens: eb('cache_write_tokens', '+', BigInt(u.cacheWrite)),
      cost: eb('cost', '+', cost), steps: eb('steps', '+', 1),
      // the step of the call in flight is stored: no call is (a cancelled run keeps its mark: it never changes once finished)
      call_in_flight_until: sql<Date | null>`CASE WHEN status = 'running' THEN NULL ELSE call_in_flight_until END`,
      call_in_flight_id: sql<string | null>`CASE WHEN status = 'running' THEN NULL ELSE call_in_flight_id END`,
      lease_until: sql<Date | null>`CASE WHEN status = 'running' THEN ${leaseUntil}::timestamptz ELSE lease_until END`,
    })).where('org_id', '=', orgId).where('id', '=', runId)
      .returning(['status', 'error_class', 'cost', 'steps', 'input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens']));
    return {
      status: r.status, errorClass: r.error_class, cost: dec(r.cost), steps: r.steps,
      usage: { inputTokens: num(r.input_tokens), outputTokens: num(r.output_tokens), cachedInputTokens: num(r.cached_input_tokens), cacheWriteTokens: num(r.cache_write_tokens) },
    };
  },

  /**
   * Finishes a running run (no row: it was already finished, e.g. cancelled meanwhile). `eventOwedUntil`: a cancel leaving
   * the run's event to its execution in this process marks it owed (call_in_flight_until later than finished_at), at the
   * latest until then (or the call in flight's own mark): past it, emitOwedCancelEvents emits it.
   */
  async finishRun(db: Db, orgId: string, runId: string, f: RunFinish, eventOwedUntil?: Date): Promise<RunDto | undefined> {
    const [r] = await db.run(qb.updateTable('ai.runs').set((eb) => ({
      status: f.status, output: f.output, stop_reason: f.stopReason, error_class: f.errorClass, error_message: f.errorMessage,
      finished_at: f.finishedAt, latency_ms: sql<number>`greatest(0, round(extract(epoch FROM (${f.finishedAt}::timestamptz - ${eb.ref('started_at')})) * 1000))::int`,
      lease_until: null,
      // failed or succeeded: no call is in flight any more (a lost instance's call included); a cancelled run keeps its mark
      ...(f.status !== 'cancelled' ? { call_in_flight_until: null, call_in_flight_id: null } : {}),
      ...(eventOwedUntil ? {
        call_in_flight_until: sql<Date>`CASE WHEN call_in_flight_until > ${f.finishedAt}::timestamptz THEN call_in_flight_until ELSE ${eventOwedUntil}::timestamptz END`,
      } : {}),
    })).where('org_id', '=', orgId).where('id', '=', runId).where('status', '=', 'running').returningAll());
    return r && toRun(r);
  },

  /**
   * Takes the agent.run.failed event a cancel left to the run's execution (call_in_flight_until later than finished_at):
   * clears the mark and answers the run as stored, or undefined when none is owed (emitted already, e.g. by the sweep).
   */
  async takeCancelEvent(db: Db, orgId: string, runId: string): Promise<RunDto | undefined> {
    const [r] = await db.run(qb.updateTable('ai.runs').set({ call_in_flight_until: null })
      .where('org_id', '=', orgId).where('id', '=', runId).where('status', '=', 'cancelled')
      .where(sql<boolean>`call_in_flight_until > finished_at`).returningAll());
    return r && toRun(r);
  },

  /**
   * Privileged (agents.cancel_events): takes the owed events of cancelled runs whose mark has passed at `now` (their
   * execution would have emitted them by then: it died), clearing each mark; rows another sweep holds are skipped. Runs
   * marked with an LLM call (its budget reservation) are left to dueCancelledCalls: their reservation is released in a
   * transaction of their organization, with the event.
   */
  async takeDueCancelEvents(db: Db, now: Date, limit = 500): Promise<(RunDto & { orgId: string })[]> {
    const due = qb.selectFrom('ai.runs').select(['org_id', 'id'])
      .where('status', '=', 'cancelled').where('call_in_flight_until', '<', now).where(sql<boolean>`call_in_flight_until > finished_at`)
      .where('call_in_flight_id', 'is', null)
      .limit(limit).forUpdate().skipLocked();
    const rows = await db.run(qb.updateTable('ai.runs').set({ call_in_flight_until: null })
      .where((eb) => eb(eb.refTuple('org_id', 'id'), 'in', due.$asTuple('org_id', 'id')))
      .where('status', '=', 'cancelled').where(sql<boolean>`call_in_flight_until > finished_at`).returningAll());
    return rows.map((r) => ({ ...toRun(r), orgId: r.org_id }));
  },

  /**
   * Privileged (agents.cancel_events): cancelled runs owing their event past their mark at `now` (as takeDueCancelEvents)
   * whose LLM call in flight (call_in_flight_id: its budget reservation) was never settled: their execution died during
   * the call. Each is then released in a transaction of its organization (lockDueCancelledCall), which checks again. A
   * deleted organization's runs are left (its deletion cleared their marks: cancelRunsOfDeletedOrganization).
   */
  async dueCancelledCalls(db: Db, now: Date, limit = 500): Promise<{ orgId: string; id: string }[]> {
    const rows = await db.run(qb.selectFrom('ai.runs as r').innerJoin('core.organizations as o', 'o.id', 'r.org_id').select(['r.org_id', 'r.id'])
      .where('r.status', '=', 'cancelled').where('r.call_in_flight_until', '<', now).where(sql<boolean>`r.call_in_flight_until > r.finished_at`)
      .where('r.call_in_flight_id', 'is not', null).where('o.deleted_at', 'is', null)
      .orderBy('r.call_in_flight_until').limit(limit));
    return rows.map((r) => ({ orgId: r.org_id, id: r.id }));
  },

  /**
   * Locks a cancelled run still owing its event past its mark at `now` with an LLM call it is marked with, for the sweep to
   * release that call's reservation: answers the call, or undefined when its event was taken meanwhile (another sweep, its
   * execution after all: takeCancelEvent).
   */
  async lockDueCancelledCall(db: Db, orgId: string, id: string, now: Date): Promise<{ callId: string } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs').select('call_in_flight_id')
      .where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'cancelled').where('call_in_flight_until', '<', now)
      .where(sql<boolean>`call_in_flight_until > finished_at`).where('call_in_flight_id', 'is not', null).forUpdate());
    return r?.call_in_flight_id ? { callId: r.call_in_flight_id } : undefined;
  },

  /** The budget reservations an LLM call still holds (none: settled, or no budget applied to it), by budget, each in the month it was taken. */
  async callReservations(db: Db, orgId: string, callId: string): Promise<{ budgetId: string; period: string; cost: string; tokens: number }[]> {
    const held = await db.run(qb.selectFrom('ai.budget_reservations').select(['budget_id', 'period', 'cost', 'tokens'])
      .where('org_id', '=', orgId).where('call_id', '=', callId).orderBy('budget_id'));
    return held.map((h) => ({ budgetId: h.budget_id, period: new Date(h.period).toISOString().slice(0, 7), cost: dec(h.cost), tokens: num(h.tokens) }));
  },

  /**
   * Locks, by id, the runs of an organization being deleted that its deletion finishes (RunsService.cancelRunsOfDeletedOrganization):
   * those running, and those cancelled whose event their execution still owes (call_in_flight_until later than finished_at).
   * Answers each with its agent and the LLM call it is marked with (its budget reservation, if still held; null: none).
   */
  async lockRunsOfDeletedOrganization(db: Db, orgId: string): Promise<{ id: string; status: string; agentId: string; callId: string | null }[]> {
    const rows = await db.run(qb.selectFrom('ai.runs').select(['id', 'status', 'agent_id', 'call_in_flight_id'])
      .where('org_id', '=', orgId).where(sql<boolean>`(status = 'running' OR (status = 'cancelled' AND call_in_flight_until > finished_at))`)
      .orderBy('id').forUpdate());
    return rows.map((r) => ({ id: r.id, status: r.status, agentId: r.agent_id, callId: r.call_in_flight_id }));
  },

  /**
   * Clears the marks of cancelled runs (`ids`, locked): none owes its event any more, so neither its execution (takeCancelEvent)
   * nor the sweep of owed events (takeDueCancelEvents) emits one.
   */
  async clearCancelEventMarks(db: Db, orgId: string, ids: string[]): Promise<void> {
    if (!ids.length) return;
    await db.run(qb.updateTable('ai.runs').set({ call_in_flight_until: null })
      .where('org_id', '=', orgId).where('id', 'in', ids).where('status', '=', 'cancelled').where('call_in_flight_until', 'is not', null));
  },

  /** organizations' helper: a transaction let in before the deletion committed learns of it after waiting for a run the deletion locked */
  organizationDeleted,

  /**
   * Privileged (agents.lost_runs): running runs whose lease passed before `now` (the instance executing them stopped
   * writing: it is gone), and those no instance has taken (NULL lease: their job never started them) started before
   * `queuedBefore` (their job has failed, or been lost, for longer than the queue retries it). Each is then failed in a
   * transaction of its organization (lockLostRun), which checks again.
   */
  async lostRuns(db: Db, now: Date, queuedBefore: Date, limit = 500): Promise<{ orgId: string; id: string }[]> {
    // a deleted organization's runs are left (no transaction of its own is opened any more)
    const rows = await db.run(qb.selectFrom('ai.runs as r').innerJoin('core.organizations as o', 'o.id', 'r.org_id').select(['r.org_id', 'r.id'])
      .where('r.status', '=', 'running').where('o.deleted_at', 'is', null)
      .where((eb) => eb.or([eb('r.lease_until', '<', now), eb.and([eb('r.lease_until', 'is', null), eb('r.started_at', '<', queuedBefore)])]))
      .orderBy('r.lease_until').orderBy('r.started_at').limit(limit));
    return rows.map((r) => ({ orgId: r.org_id, id: r.id }));
  },

  /**
   * Locks a running run that is lost at `now` (as lostRuns) for the sweep to fail it: answers the call id of the LLM call
   * it had in flight (its budget reservation) and whether an instance had taken it, or undefined when the run is finished
   * or leased (again, or taken by its job) meanwhile: another sweep, its execution after all.
   */
  async lockLostRun(db: Db, orgId: string, id: string, now: Date, queuedBefore: Date): Promise<{ lostCallId: string | null; taken: boolean } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.runs').select(['call_in_flight_id', 'lease_until'])
      .where('org_id', '=', orgId).where('id', '=', id).where('status', '=', 'running')
      .where((eb) => eb.or([eb('lease_until', '<', now), eb.and([eb('lease_until', 'is', null), eb('started_at', '<', queuedBefore)])]))
      .forUpdate());
    return r && { lostCallId: r.call_in_flight_id, taken: r.lease_until !== null };
  },

  // ---------------------------------------------------------------- budgets
  /** `agentId` null: a call of no agent (an embedding call): only the organization's budget applies. */
  async reserve(db: Db, agentId: string | null, callId: string, cost: Decimal, tokens: number, now: Date, expires: Date) {
    return db.$queryRaw<{ budget_id: string; ok: boolean; cost_left: Decimal | null; tokens_left: bigint | null }[]>`
      SELECT budget_id, ok, cost_left, tokens_left FROM ai.reserve_budget(${agentId}::uuid, ${callId}::uuid, ${cost}::numeric, ${tokens}::bigint, ${now}::timestamptz, ${expires}::timestamptz)`;
  },

  /**
   * Before a retry of call `callId`, where every budget can take it (ai.extend_reservation): adds `cost`/`tokens` (what its
   * failed attempts billed since it last reserved) to each reservation it holds, and reserves `whole` (billed so far and
   * the retry's worst case) on each budget it holds none on (created since); each row says what was asked of its budget.
   * A call holding none (a sweep released them, no budget applied when it reserved, its budgets deleted since) extends
   * nothing and gets no row: its retry reserves (`reserve`).
   */
  async extendReservation(db: Db, agentId: string, callId: string, cost: Decimal, tokens: number, whole: { cost: Decimal; tokens: number }, now: Date, expires: Date) {
    return db.$queryRaw<{ budget_id: string; ok: boolean; cost_left: Decimal | null; tokens_left: bigint | null; asked_cost: Decimal; asked_tokens: bigint }[]>`
      SELECT budget_id, ok, cost_left, tokens_left, asked_cost, asked_tokens FROM ai.extend_reservation(${agentId}::uuid, ${callId}::uuid, ${cost}::numeric, ${tokens}::bigint,
        ${whole.cost}::numeric, ${whole.tokens}::bigint, ${now}::timestamptz, ${expires}::timestamptz)`;
  },

  async settle(db: Db, callId: string, cost: Decimal, tokens: number, agentId: string | null, now: Date) {
    return db.$queryRaw<{ budget_id: string; agent_id: string | null; period: Date; threshold: number; spent_cost: Decimal; spent_tokens: bigint; cost_limit: Decimal | null; token_limit: bigint | null }[]>`
      SELECT * FROM ai.settle_budget(${callId}::uuid, ${cost}::numeric, ${tokens}::bigint, ${agentId}::uuid, ${now}::timestamptz)`;
  },

  async budgets(db: Db, orgId: string, period: Date, id?: string): Promise<BudgetDto[]> {
    const rows = await db.$queryRaw<{
      id: string; agent_id: string | null; cost_limit: Decimal | null; token_limit: bigint | null; thresholds: number[];
      spent_cost: Decimal; spent_tokens: bigint; reserved_cost: Decimal; reserved_tokens: bigint; thresholds_reached: number[];
    }[]>`
      SELECT b.id, b.agent_id, b.cost_limit, b.token_limit, b.thresholds,
        coalesce(u.spent_cost, 0) AS spent_cost, coalesce(u.spent_tokens, 0) AS spent_tokens,
        coalesce(u.reserved_cost, 0) AS reserved_cost, coalesce(u.reserved_tokens, 0) AS reserved_tokens,
        coalesce(u.thresholds_reached, '{}') AS thresholds_reached
      FROM ai.budgets b
      LEFT JOIN ai.budget_usage u ON u.org_id = b.org_id AND u.budget_id = b.id AND u.period = ${period}::date
      WHERE b.org_id = ${orgId}::uuid AND (${id ?? null}::uuid IS NULL OR b.id = ${id ?? null}::uuid)
      ORDER BY b.agent_id NULLS FIRST, b.created_at`;
    const month = period.toISOString().slice(0, 7);
    return rows.map((r) => ({
      id: r.id, agentId: r.agent_id, costLimit: r.cost_limit === null ? null : r.cost_limit.toFixed(4), tokenLimit: r.token_limit === null ? null : Number(r.token_limit),
      thresholds: r.thresholds, period: month, spentCost: dec(r.spent_cost), spentTokens: num(r.spent_tokens), reservedCost: dec(r.reserved_cost),
      reservedTokens: num(r.reserved_tokens),
      costLeft: r.cost_limit === null ? null : dec(Decimal.max(0, r.cost_limit.minus(r.spent_cost).minus(r.reserved_cost))),
      tokensLeft: r.token_limit === null ? null : Math.max(0, Number(r.token_limit) - num(r.spent_tokens) - num(r.reserved_tokens)),
      thresholdsReached: r.thresholds_reached,
    }));
  },

  async createBudget(db: Db, orgId: string, b: { agentId: string | null; costLimit: string | null; tokenLimit: number | null; thresholds: number[] }): Promise<string> {
    const [r] = await db.run(qb.insertInto('ai.budgets').values({
      org_id: orgId, agent_id: b.agentId, cost_limit: b.costLimit === null ? null : new Decimal(b.costLimit),
      token_limit: b.tokenLimit === null ? null : BigInt(b.tokenLimit), thresholds: b.thresholds,
    }).returning('id'));
    return r.id;
  },

  async updateBudget(db: Db, orgId: string, id: string, p: { costLimit?: string | null; tokenLimit?: number | null; thresholds?: number[] }): Promise<number> {
    return db.runCount(qb.updateTable('ai.budgets').set({
      ...(p.costLimit !== undefined ? { cost_limit: p.costLimit === null ? null : new Decimal(p.costLimit) } : {}),
      ...(p.tokenLimit !== undefined ? { token_limit: p.tokenLimit === null ? null : BigInt(p.tokenLimit) } : {}),
      ...(p.thresholds !== undefined ? { thresholds: p.thresholds } : {}),
      updated_at: sql`now()`,
    }).where('org_id', '=', orgId).where('id', '=', id));
  },

  async deleteBudget(db: Db, orgId: string, id: string): Promise<number> {
    return db.runCount(qb.deleteFrom('ai.budgets').where('org_id', '=', orgId).where('id', '=', id));
  },

  // ---------------------------------------------------------------- usage
  /** `apiKeyId`: as listRuns. */
  async usage(db: Db, orgId: string, from: string, to: string, apiKeyId?: string): Promise<UsageRowDto[]> {
    // count(*) is bigint; sums of bigint columns are numeric
    const rows = await db.$queryRaw<{
      day: string; agent_id: string; model_id: string; runs: bigint;
      input_tokens: Decimal; output_tokens: Decimal; cached_input_tokens: Decimal; cache_write_tokens: Decimal; cost: Decimal;
    }[]>`
      SELECT (r.started_at AT TIME ZONE 'UTC')::date::text AS day, r.agent_id, r.model_id, count(*) AS runs,
        sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens, sum(r.cached_input_tokens) AS cached_input_tokens,
        sum(r.cache_write_tokens) AS cache_write_tokens, sum(r.cost) AS cost
      FROM ai.runs r
      WHERE r.org_id = ${orgId}::uuid AND (${apiKeyId ?? null}::uuid IS NULL OR r.api_key_id = ${apiKeyId ?? null}::uuid)
        -- UTC days, as day above: a bare date compared with a timestamptz is midnight in the session's TimeZone
        AND r.started_at >= ${from}::date::timestamp AT TIME ZONE 'UTC' AND r.started_at < (${to}::date + 1)::timestamp AT TIME ZONE 'UTC'
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    return rows.map((r) => ({
      day: r.day, agentId: r.agent_id, modelId: r.model_id, runs: num(r.runs),
      usage: { inputTokens: num(r.input_tokens.toString()), outputTokens: num(r.output_tokens.toString()), cachedInputTokens: num(r.cached_input_tokens.toString()), cacheWriteTokens: num(r.cache_write_tokens.toString()) },
      cost: dec(r.cost),
    }));
  },

  /** An embedding call's usage row (EmbeddingUsageService, as a service: the policy lets only a service without a key write one). */
  async addEmbeddingUsage(db: Db, orgId: string, u: {
    purpose: string; modelId: string; userId: string | null; apiKeyId: string | null; documentId: string | null; inputs: number; requests: number;
    inputTokens: number; tokensCounted: boolean; cost: Decimal; prices: Record<string, string> | null; at: Date;
  }): Promise<void> {
    await db.run(qb.insertInto('ai.embedding_usage').values({
      org_id: orgId, purpose: u.purpose, model_id: u.modelId, user_id: u.userId, api_key_id: u.apiKeyId, document_id: u.documentId, inputs: u.inputs, requests: u.requests,
      input_tokens: BigInt(u.inputTokens), tokens_counted: u.tokensCounted, cost: u.cost, prices: u.prices ? JSON.stringify(u.prices) : null, at: u.at,
    }));
  },

  /** The embedding calls per UTC day, purpose and model in [from, to] (`apiKeyId`: as listRuns; RLS decides the rest, as for runs). */
  async embeddingUsage(db: Db, orgId: string, from: string, to: string, apiKeyId?: string): Promise<EmbeddingUsageRowDto[]> {
    const rows = await db.$queryRaw<{ day: string; purpose: string; model_id: string; calls: bigint; input_tokens: Decimal; cost: Decimal }[]>`
      SELECT (u.at AT TIME ZONE 'UTC')::date::text AS day, u.purpose, u.model_id, count(*) AS calls, sum(u.input_tokens) AS input_tokens, sum(u.cost) AS cost
      FROM ai.embedding_usage u
      WHERE u.org_id = ${orgId}::uuid AND (${apiKeyId ?? null}::uuid IS NULL OR u.api_key_id = ${apiKeyId ?? null}::uuid)
        AND u.at >= ${from}::date::timestamp AT TIME ZONE 'UTC' AND u.at < (${to}::date + 1)::timestamp AT TIME ZONE 'UTC'
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    return rows.map((r) => ({ day: r.day, purpose: r.purpose, modelId: r.model_id, calls: num(r.calls), inputTokens: num(r.input_tokens.toString()), cost: dec(r.cost) }));
  },

  // ---------------------------------------------------------------- the organization's provider key
  async providerKey(db: Db, orgId: string): Promise<{ secret: unknown; baseUrl: string | null; keyHint: string; updatedAt: Date } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.provider_keys').selectAll().where('org_id', '=', orgId));
    return r && { secret: r.secret, baseUrl: r.base_url, keyHint: r.key_hint, updatedAt: r.updated_at };
  },

  async setProviderKey(db: Db, orgId: string, k: { secret: unknown; baseUrl: string | null; keyHint: string; createdBy: string | null }): Promise<ProviderKeyDto> {
    const [r] = await db.run(qb.insertInto('ai.provider_keys').values({
      org_id: orgId, secret: JSON.stringify(k.secret), base_url: k.baseUrl, key_hint: k.keyHint, created_by: k.createdBy,
    }).onConflict((oc) => oc.column('org_id').doUpdateSet({ secret: JSON.stringify(k.secret), base_url: k.baseUrl, key_hint: k.keyHint, updated_at: sql`now()` }))
      .returning(['key_hint', 'base_url', 'updated_at']));
    return { keyHint: r.key_hint, baseUrl: r.base_url, updatedAt: iso(r.updated_at)! };
  },

  /** Privileged (secrets.rotate): organizations whose key is sealed under another key than `activeKid`. */
  async staleProviderKeys(db: Db, activeKid: string): Promise<string[]> {
    const rows = await db.run(qb.selectFrom('ai.provider_keys').select('org_id').where(sql<boolean>`coalesce(secret ->> 'kid', '') <> ${activeKid}`));
    return rows.map((r) => r.org_id);
  },

  async lockProviderKey(db: Db, orgId: string): Promise<{ secret: unknown } | undefined> {
    const [r] = await db.run(qb.selectFrom('ai.provider_keys').select('secret').where('org_id', '=', orgId).forUpdate().skipLocked());
    return r;
  },

  async resealProviderKey(db: Db, orgId: string, secret: unknown): Promise<void> {
    await db.run(qb.updateTable('ai.provider_keys').set({ secret: JSON.stringify(secret), updated_at: sql`now()` }).where('org_id', '=', orgId));
  },

  async deleteProviderKey(db: Db, orgId: string): Promise<number> {
    return db.runCount(qb.deleteFrom('ai.provider_keys').where('org_id', '=', orgId));
  },
};
