import { HttpStatus, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { randomUUID } from 'node:crypto';
import { Decimal } from '../../platform/decimal.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { ADMIN_ROLES, type Principal, type RequestRole } from '../../platform/auth/principal.js';
import { Clock } from '../../platform/clock/clock.js';
import { DatabaseService, type RequestMeta, type TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db } from '../../platform/database/sql.js';
import { AppError } from '../../platform/errors/app-error.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { emitEvent } from '../../platform/events/events.js';
import { enqueue, JobRegistry, type Job } from '../../platform/queue/jobs.js';
import { AnswerTooLarge, CallTimer, LlmError, Sleeper, withRetries, type ChatMessage, type ChatResult, type TokenUsage, type ToolCall } from '../../platform/ai/llm-provider.js';
import { createLlmProvider, type ProviderConnection } from '../../platform/ai/openai-provider.js';
import type { LlmProvider } from '../../platform/ai/llm-provider.js';
import { countChatInputTokens, countTextTokens } from '../../platform/ai/token-count.js';
import { AuditService, type AuditEntry } from '../audit/audit.service.js';
import { EntitlementsService } from '../billing/entitlements.service.js';
import { AgentErrors } from './agents.errors.js';
import type { AgentDto, CreateRunDto, ErrorClass, RunDto, RunStepDto } from './agents.dto.js';
import { agentsRepository as repo, type Prices, type RunFinish, type StepRow } from './agents.repository.js';
import { budgetRefusal, settleBudgets, type ReservationRow } from './budgets.js';
import { costOf, inputWorstCase, pricesJson, totalTokens, worstCaseCost, type InputMargin } from './cost.js';
import { ProviderKeysService } from './provider-keys.service.js';
import { ToolArgumentError, ToolRegistry, type ToolContext } from './tool-registry.js';
import { triggersRepository } from './triggers.repository.js';
import { Metrics } from '../../platform/observability/metrics.js';

/**
 * Who may start or cancel a run: every member, a viewer too. Issue 16 says both "members run them; viewers read
 * runs" and, among the tests that must exist, "an agent run by a viewer of organization A can reach only A's rows
 * through every tool" (test/agents/runs.test.ts): tools only read, as the runner's own claims allow.
 */
export const RUNNER_ROLES: RequestRole[] = ['owner', 'admin', 'accountant', 'member', 'viewer', 'service'];

/** Who finishes the runs of lost instances (RunsService.failLostRuns): the audit's actor. */
const LOST_RUN_SWEEPER: Principal = { kind: 'service', name: 'agents-lost-runs' };

/** Who releases the LLM call of a cancelled run whose executing instance died during it (RunsService.emitOwedCancelEvents): the audit's actor. */
const CANCEL_EVENT_SWEEPER: Principal = { kind: 'service', name: 'agents-cancel-events' };

/**
 * Who fails a run whose starter can no longer open a transaction in its organization (removed from it, their API key
 * revoked, their session ended: RunsService.failUnexpectedly, failUntakenRun): the audit's actor. As the sweep's, its
 * transaction opens in a live organization only: nothing is written in a deleted one.
 */
const RUN_FAILER: Principal = { kind: 'service', name: 'agents-runs' };

/**
 * What the starter's transaction is refused with when they can no longer run in the organization: removed from it (404),
 * their API key revoked or expired or the session of their token ended (401: DatabaseService.tenant answers the database's
 * 28000 so). The run's load checks no role.
 */
const STARTER_REFUSED = new Set([401, 404]);

/** The outbox topic of runs started with ?async=true. */
export const RUN_JOB_TOPIC = 'agents.run';

/**
 * Who started a job's run, by ids only: the job's payload is kept in the outbox row and in Redis (Bull's copy), which
 * hold no e-mail and no API key's secret hash; the job reads them on its privileged path (runJob: jobPrincipal). The
 * session id is kept: a job's run whose starter's session ended is refused, as their request would be.
 */
type JobStarter =
  | { kind: 'user'; userId: string; personalOrgId: string; sessionId?: string }
  | { kind: 'apiKey'; keyId: string }
  | { kind: 'service'; name: string };

function jobStarter(p: Principal): JobStarter {
  switch (p.kind) {
    case 'user':
      return { kind: 'user', userId: p.userId, personalOrgId: p.personalOrgId, ...(p.sessionId ? { sessionId: p.sessionId } : {}) };
    case 'apiKey':
      return { kind: 'apiKey', keyId: p.keyId };
    case 'service':
      return { kind: 'service', name: p.name };
    case 'anonymous':
      throw new Error('an anonymous caller starts no run');
  }
}

/** Whether the starter a job's payload names is the one its run records (AgentsRepository.runStarter). */
function sameStarter(named: JobStarter, recorded: { startedBy: string | null; apiKeyId: string | null; service: string | null }): boolean {
  switch (named.kind) {
    case 'user':
      return recorded.startedBy === named.userId && recorded.apiKeyId === null;
    case 'apiKey':
      return recorded.apiKeyId === named.keyId && recorded.startedBy === null;
    case 'service':
      return recorded.startedBy === null && recorded.apiKeyId === null && recorded.service === `service:${named.name}`;
  }
}

/** A job's payload names another starter than its run records (or none): the run is failed, as RUN_FAILER. */
class ForgedStarter {
  readonly message = 'the job does not name the starter its run records';
  readonly refusal = PlatformErrors.error('auth.unauthorized', 'the job\'s starter is not the run\'s');
}

/**
 * How long a job's run may wait for its job to take it (its lease from creation: started_at plus this): past it, the
 * sweep fails it (worker_lost). The queue retries a job that fails (its loading step: a provider key that cannot be
 * opened, a database error) or that it lost up to its topic's cap of tries (JobRegistry.maxAttempts), at a backoff capped at an hour, in-process
 * or through Bull; a job that has not started its run within a day (some 30 attempts at the
 * least, an outage of the queue included) will not, and its run would otherwise stay running for ever. A job that
 * comes later finds the run finished and leaves it (takeRun).
 */
export const QUEUED_RUN_LEASE_MS = 24 * 60 * 60_000;

/** Where a streamed run's events go (server-sent events). */
export interface RunSink {
  event(name: 'run' | 'token' | 'retry' | 'tool_call' | 'tool_result' | 'step' | 'result' | 'error', data: unknown): void;
}

export interface StartedRun {
  run: RunDto;
  /** the run's input messages */
  input: ChatMessage[];
  agent: AgentDto;
  connection: ProviderConnection;
  principal: Principal;
  /** an API key's scopes, as the database verified them when the run started; null for every other principal */
  keyScopes: readonly string[] | null;
  orgId: string;
  meta: RequestMeta;
  /**
   * executed by its job (?async=true, a trigger): an unexpected error releases the run for the job's retry (runJob); an
   * interactive run is failed at once instead (internal)
   */
  queued?: boolean;
  /** the steps earlier deliveries of its job stored (their execution failed): the execution resumes after them */
  steps?: RunStepDto[];
}

export interface StartOptions {
  /** run it as a job (?async=true): the job is written in the run's transaction */
  asJob?: boolean;
  /**
   * the route's preflight (OrgPreflightRoute with @WritesRequireSubscription) checked the subscription moments ago:
   * the run's transaction does not read it again. Triggers and jobs, which have no preflight, leave it unset.
   */
  subscriptionChecked?: boolean;
  /** roles that may start it (default: every member) */
  roles?: RequestRole[];
  /** a plan feature it needs besides a subscription that allows writing (automation: ai_automation) */
  feature?: string;
  /** runs in the transaction that creates the run (a trigger records its firing there) */
  onCreated?: (tx: TenantTx, run: RunDto) => Promise<void>;
}

/** The budget refused a call: the run fails with budget_exceeded, the caller of a sync run gets 402. */
class BudgetRefusal extends Error {
  constructor(readonly error: AppError) {
    super(error.message);
  }
}

// a tool's answer handed to the model is cut here (a prompt is not a data export)
const TOOL_RESULT_MAX_CHARS = 20_000;
/**
 * The most tool calls of one answer that are run (maxSteps bounds the LLM calls, this each one's tool calls): the calls
 * past them are not run; the model is answered a tool error for each, and the trace records them in one failed step
 * (REFUSED_TOOL_CALLS_STEP).
 */
export const MAX_TOOL_CALLS_PER_ANSWER = 16;
/** The name of the step recording an answer's tool calls past MAX_TOOL_CALLS_PER_ANSWER (its detail: toolCallIds, names). */
export const REFUSED_TOOL_CALLS_STEP = 'tool_calls_refused';
const refusedToolCallError = `not run: an answer may call at most ${MAX_TOOL_CALLS_PER_ANSWER} tools; call fewer at a time`;
// a model's price list and reasoning flag (catalog data, the same for every organization) are read once per this many ms
// per process: a price added later is used from its date on once the list is read again (announced prices are in the list)
const PRICE_LIST_TTL_MS = 30_000;
// provider clients kept per connection (endpoint, key, timeout): a client per run cost CPU on every run
const PROVIDER_CACHE_MAX = 64;

/**
 * The run is no longer running (cancelled meanwhile, or failed by the sweep): the transaction that reserved for its next
 * call rolls back; before a retry of a call, the retry is not made.
 */
class NotRunning extends Error {}

/**
 * Before a retry: the call outlived its longest duration (its reservation expired, or would before the retry ends). The
 * run is still running: it fails with the call, as timed out (review rJ: it failed with its last attempt's error class).
 */
class CallExpired extends NotRunning {}

/** A job's run or agent cannot be read once the run is taken: the take rolls back (runJob). */
class NothingToRun extends Error {}

/**
 * An LLM call the provider answered (or billed for failed attempts), its step not stored yet: set by the loop from the
 * answer to the commit of the transaction storing it. Should that transaction fail, the execution's failure stores it
 * (settleCallInFlight) instead of settling its reservation at nothing.
 */
interface UnstoredCall {
  callId: string;
  step: StepRow;
  usage: TokenUsage;
  cost: Decimal;
  endedAt: Date;
}

/**
 * The LLM call an execution has in flight: the loop's call from the commit of its reservation to the commit of its step
 * (`call`: its id, and the step number it takes), and the provider's answer (or billed failure) once it has one
 * (`unstored`). Should the execution fail meanwhile, its failure settles the call (settleCallInFlight).
 */
interface InFlight {
  call?: { callId: string; stepNo: number };
  unstored?: UnstoredCall;
}

/** A tool's answer (or its error) as the model is handed it. */
function toolMessage(toolCallId: string, error: string | null | undefined, answer: unknown): ChatMessage {
  const text = JSON.stringify(error ? { error } : answer) ?? 'null';
  return { role: 'tool', toolCallId, content: text.length > TOOL_RESULT_MAX_CHARS ? `${text.slice(0, TOOL_RESULT_MAX_CHARS)}... (cut)` : text };
}

/**
 * The conversation of a job's run taken again after its execution failed, from the steps it stored (in order): each LLM
 * call answered with tool calls, as the assistant's message, and each tool's result (its answer as stored: a JSON value
 * reads back with its keys in PostgreSQL's order, the same data); the calls made, counted against maxSteps; the tool
 * calls of the last call with no result stored (the failure came between them), to run before the next call; and the
 * content of the last call. A failed call (budget, provider) finished the run: a run taken again has none, but for a
 * call stored by a failed execution (internal: settleCallInFlight), which is left out.
 */
export function resumeConversation(steps: readonly RunStepDto[]): { messages: ChatMessage[]; calls: number; pendingTools: ToolCall[]; lastContent: string | null } {
  const messages: ChatMessage[] = [];
  let calls = 0;
  let pendingTools: ToolCall[] = [];
  let lastContent: string | null = null;
  for (const step of steps) {
    // a call answered whose step could not be stored when it ended (internal): billed, its answer not used, the call made
    // again; not counted against maxSteps
    if (step.kind === 'llm_call' && step.errorClass === 'internal') continue;
    if (step.kind === 'llm_call') {
      calls++;
      if (step.status !== 'succeeded') continue;
      const detail = step.detail as { content?: string | null; toolCalls?: ToolCall[] } | null;
      const toolCalls = detail?.toolCalls ?? [];
      lastContent = detail?.content ?? null;
      messages.push({ role: 'assistant', content: lastContent, ...(toolCalls.length ? { toolCalls } : {}) });
      pendingTools = [...toolCalls];
      continue;
    }
    // the tool calls of an answer past MAX_TOOL_CALLS_PER_ANSWER, refused together: each answered its error
    if (step.name === REFUSED_TOOL_CALLS_STEP) {
      const ids = (step.detail as { toolCallIds?: string[] } | null)?.toolCallIds ?? [];
      for (const id of ids) messages.push(toolMessage(id, refusedToolCallError, null));
      // a Set: a step stored before answers were held to MAX_TOOL_CALLS_AN_ANSWER_HOLDS may name some 280,000 calls
      const refused = new Set(ids);
      pendingTools = pendingTools.filter((c) => !refused.has(c.id));
      continue;
    }
    const detail = step.detail as { toolCallId?: string; result?: unknown } | null;
    const toolCallId = detail?.toolCallId ?? '';
    messages.push(toolMessage(toolCallId, step.status === 'failed' ? step.errorMessage ?? 'the tool failed' : null, detail?.result ?? null));
    pendingTools = pendingTools.filter((c) => c.id !== toolCallId);
  }
  return { messages, calls, pendingTools, lastContent };
}

/**
 * The event of a finished run: agent.run.completed, or agent.run.failed (failed, cancelled), with its counters as stored
 * (RunsService; the erasure's cancel of a person's runs too).
 */
export function runFinishedEvent(run: RunDto): [type: string, payload: Record<string, unknown>] {
  const common = { runId: run.id, agentId: run.agentId, startedBy: run.startedBy, trigger: run.trigger, steps: run.steps, cost: run.cost };
  return run.status === 'succeeded'
    ? ['agent.run.completed', { ...common, stopReason: run.stopReason, usage: run.usage, latencyMs: run.latencyMs ?? 0 }]
    : ['agent.run.failed', { ...common, errorClass: run.errorClass as ErrorClass, message: run.errorMessage ?? '' }];
}

/** The audit entry of a run's finish (RunsService.auditFinished says which; the erasure's cancel of a person's runs too). */
export function runFinishedAudit(run: RunDto, extra: Record<string, unknown> = {}): AuditEntry {
  const own = run.errorClass === 'budget_exceeded' || run.errorClass === 'internal' || run.errorClass === 'worker_lost';
  const action = run.status === 'failed' ? (own ? `ai.run_${run.errorClass}` : 'ai.run_failed') : `ai.run_${run.status}`;
  return {
    action, entityType: 'ai_run', entityId: run.id, before: { status: 'running' },
    after: { status: run.status, errorClass: run.errorClass, stopReason: run.stopReason, cost: run.cost, usage: run.usage, steps: run.steps, ...extra },
  };
}

/** The errorMessage of a run cut as the server shut down (cutAtShutdown); its audit's reason is server_shutdown. */
const SERVER_SHUTDOWN_MESSAGE = 'cut as the server shut down';

/** A cancelled run's errorMessage: who cancelled it (a person, an API key named by its id, a service). */
export const cancelledBy = (p: Principal): string =>
  p.kind === 'apiKey' ? `cancelled by API key ${p.keyId}` : p.kind === 'service' ? `cancelled by a service (${p.name})` : 'cancelled by a person';

/** Names the recorded run in a budget refusal's details (runId): the 402 of a synchronous run, the streamed error event. */
function namingRun(error: AppError, runId: string): void {
  const details = error.details && typeof error.details === 'object' && !Array.isArray(error.details) ? error.details : {};
  Object.assign(error, { details: { ...details, runId } });
}

/** `text` without NUL characters, which PostgreSQL stores in no text or jsonb value (the write would fail: 400). */
const withoutNul = (text: string) => text.replaceAll('\u0000', '');

/** A model's answer as it is stored and used: its content, tool calls and finish reason without NUL characters (withoutNul). */
function storableResult(r: ChatResult): ChatResult {
  return {
    ...r, content: r.content === null ? null : withoutNul(r.content), finishReason: r.finishReason === null ? null : withoutNul(r.finishReason),
    toolCalls: r.toolCalls.map((c) => ({ id: withoutNul(c.id), name: withoutNul(c.name), arguments: withoutNul(c.arguments) })),
  };
}

/** Tokens of a model's output, counted (the provider reported none, or the call failed before it could). */
const outputTokens = (content: string, toolCalls: readonly { name: string; arguments: string }[]) =>
  countTextTokens(content) + toolCalls.reduce((n, c) => n + countTextTokens(c.name) + countTextTokens(c.arguments), 0);

/** Adds `b` into `a` (and answers `a`). */
function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  a.input += b.input;
  a.output += b.output;
  a.cachedInput += b.cachedInput;
  a.cacheWrite += b.cacheWrite;
  return a;
}

/**
 * Runs agents: a loop of LLM calls and tool calls, each recorded as a step with its tokens, cost (at the prices
 * in effect), latency and error class, under the claims of the person who started the run. Each step is its
 * own short transaction as that person (no transaction stays open across a provider call); a budget
 * reservation precedes every LLM call and is settled right after it.
 */
@Injectable()
export class RunsService implements OnModuleInit {
  private readonly logger = new Logger(RunsService.name);
  /** runs executing in this process, for cancellation */
  private readonly active = new Map<string, AbortController>();
  /** Runs executing here cut as the server shuts down (cutAtShutdown): their finish says so (finish). */
  private readonly cutAtShutdownRuns = new Set<string>();
  /**
   * runs executing here that a person cancelled (here, or in another process while a call was in flight): their
   * agent.run.failed event is emitted by the execution once the cut call's step is stored (what the budget was charged),
   * not by the cancel, which saw the cost before it
   */
  private readonly cancelEventOwed = new Set<string>();
  /** model → its price list (latest first), whether it is a reasoning model, its input margin, and when they were read (performance.now()) */
  private readonly catalog = new Map<string, { prices: Prices[]; reasoning: boolean; margin: InputMargin; readAt: number }>();
  private readonly providers = new Map<string, LlmProvider>();

  constructor(
    private readonly db: DatabaseService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly sleeper: Sleeper,
    private readonly timer: CallTimer,
    private readonly tools: ToolRegistry,
    private readonly audit: AuditService,
    private readonly entitlements: EntitlementsService,
    private readonly jobs: JobRegistry,
    private readonly keys: ProviderKeysService,
    private readonly metrics: Metrics,
    private readonly privileged: PrivilegedDatabase,
  ) {}

  onModuleInit(): void {
    this.jobs.register(RUN_JOB_TOPIC, (job) => this.runJob(job));
  }

  private now(): Date {
    return new Date(this.clock.now());
  }

  /**
   * Checks the caller and the agent, creates the run (status running) and commits it. For ?async=true the job
   * that executes it is written in the same transaction.
   */
  async start(principal: Principal, orgId: string, meta: RequestMeta, agentId: string, dto: CreateRunDto, trigger: RunDto['trigger'], opts: StartOptions = {}): Promise<StartedRun> {
    const asJob = opts.asJob ?? false;
    return this.db.tenant(principal, orgId, meta, async (tx) => {
      const roles = opts.roles ?? RUNNER_ROLES;
      if (!roles.includes(tx.role as RequestRole)) {
        throw PlatformErrors.error('forbidden.role', `running this agent needs the role ${roles.filter((r) => r !== 'service').join(', ')}; you are ${tx.role ?? 'not a member'}`);
      }
      if (!opts.subscriptionChecked || opts.feature) await this.entitlements.enforce(tx, { app: 'omnizen', feature: opts.feature });
      // both statements travel together (the pool pipelines them); the agent's absence wins over a missing key
      const [found, key] = await Promise.allSettled([repo.getAgent(tx.db, orgId, agentId), this.keys.connection(tx.db, orgId)]);
      if (found.status === 'rejected') throw found.reason;
      const agent = found.value;
      if (!agent) throw AgentErrors.notFound('agent', agentId);
      if (agent.status !== 'active') throw AgentErrors.error('ai.agent_paused', `agent ${agent.name} is paused`);
      if (key.status === 'rejected') throw key.reason;
      const connection = key.value;
      const startedAt = this.now();
      // executed now by this instance, which holds its lease from the start; a job's run is leased by the job (runJob)
      const run = await repo.createRun(tx.db, orgId, {
        agentId, modelId: agent.modelId, startedBy: principal.kind === 'user' ? principal.userId : null, trigger, input: { messages: dto.messages }, startedAt,
        leaseUntil: asJob ? null : this.callExpiry(startedAt),
      });
      await this.audit.record(tx, { action: 'ai.run_started', entityType: 'ai_run', entityId: run.id, after: { agentId, trigger, modelId: agent.modelId } });
      await opts.onCreated?.(tx, run);
      if (asJob) await enqueue(tx, RUN_JOB_TOPIC, { runId: run.id, agentId, starter: jobStarter(principal) });
      return { run, input: dto.messages.map((m) => ({ role: m.role, content: m.content })), agent, connection, principal, keyScopes: tx.scopes, orgId, meta };
    });
  }

  /**
   * The job of an ?async=true run (at least once): it takes the run's lease. A run no longer running (the sweep fails one
   * no job took within QUEUED_RUN_LEASE_MS), or leased by an earlier delivery of the job (executing, here or elsewhere, or
   * lost with its instance: failLostRuns finishes it), is left alone. Loading failed, nothing is taken (one transaction):
   * the queue retries the job. The execution failed with an unexpected error (a database error; a budget refusal finishes
   * the run), the lease is released, with the reservation of the call it had in flight, and the job fails: the queue's
   * retry takes the run again and resumes it: its steps so far kept, its conversation rebuilt from them and its calls
   * counted against maxSteps (resumeConversation).
   */
  private async runJob(job: Job): Promise<void> {
    const { runId, agentId } = job.payload as { runId: string; agentId: string };
    const meta = { requestId: `job:${job.id}` };
    const principal = await this.jobPrincipal(job, runId);
    // the payload names another starter than the run's (rewritten in the outbox or Redis): the run is failed, nothing
    // runs as the principal it names
    if (principal instanceof ForgedStarter) return this.failUntakenRun(job, runId, meta, principal.refusal, principal.message);
    // the starter is gone (their account erased, their API key deleted): refused as their request would be
    if (principal instanceof AppError) return this.failUntakenRun(job, runId, meta, principal);
    const loaded = await this.db.tenant(principal, job.orgId, meta, async (tx) => {
      if (!(await repo.takeRun(tx.db, job.orgId, runId, this.lease()))) return undefined;
      const run = await repo.getRun(tx.db, job.orgId, agentId, runId);
      const agent = await repo.getAgent(tx.db, job.orgId, agentId);
      // nothing to execute (the job names another agent than its run's): the take rolls back, no lease is left on a run
      // nobody executes
      if (!run || !agent) throw new NothingToRun();
      return {
        run, agent, input: await repo.runInput(tx.db, job.orgId, runId), steps: run.steps ? await repo.steps(tx.db, job.orgId, runId) : [],
        connection: await this.keys.connection(tx.db, job.orgId), keyScopes: tx.scopes,
      };
    }).catch(async (err) => {
      // the starter can no longer open a transaction in the organization (removed from it, their API key revoked, their
      // session ended): every retry would be refused so until the sweep fails the run a day later: it is failed now
      if (err instanceof AppError && STARTER_REFUSED.has(err.status)) {
        await this.failUntakenRun(job, runId, meta, err);
        return undefined;
      }
      if (!(err instanceof NothingToRun)) throw err;
      this.logger.warn(`job ${job.id}: run ${runId} of agent ${agentId} cannot be read; left untaken`);
      return undefined;
    });
    if (!loaded) return;
    // an unexpected error released the run (execute): the job fails, for the queue's retry
    await this.execute({ ...loaded, principal, orgId: job.orgId, meta, queued: true }).catch((err) => {
      // a budget refusal is recorded on the run; any other app error failed it (or found its organization deleted, or the
      // run could not be failed: the sweep fails it once its lease passes): a retry would fail the same way
      if (err instanceof AppError) return;
      throw err;
    });
  }

  /**
   * Who a job's run executes as: its starter (JobStarter), their e-mail (the claims carry it) or their API key's secret
   * hash (begin_key_request verifies it, and the key's revocation and expiry) read on the privileged path. A job queued
   * before payloads held ids only names its principal whole. The starter the payload names must be the one the run
   * records (runStarter): the payload is kept in the outbox and in Redis, whose writer could otherwise run a viewer's run
   * as its owner, or as a service. ForgedStarter when it is not (or names none); an AppError when the starter is gone.
   */
  private async jobPrincipal(job: Job, runId: string): Promise<Principal | AppError | ForgedStarter> {
    const payload = job.payload as { starter?: JobStarter; principal?: Principal };
    const named = payload.starter ?? (payload.principal && payload.principal.kind !== 'anonymous' ? jobStarter(payload.principal) : undefined);
    return this.privileged.run('agents.run_jobs', async (db) => {
      const recorded = await repo.runStarter(db, job.orgId, runId);
      if (!named || !recorded || !sameStarter(named, recorded)) return new ForgedStarter();
      if (!payload.starter) return payload.principal!;
      if (named.kind === 'service') return named;
      if (named.kind === 'user') {
        const email = await triggersRepository.userEmail(db, named.userId);
        return email === undefined ? PlatformErrors.notFound('organization', job.orgId) : { ...named, email };
      }
      const secretHash = await repo.apiKeySecretHash(db, job.orgId, named.keyId);
      return secretHash === undefined ? PlatformErrors.error('auth.unauthorized', 'the API key that started the run no longer exists') : { kind: 'apiKey', keyId: named.keyId, secretHash };
    });
  }

  /**
   * Fails, as RUN_FAILER, a job's run its starter can no longer run (`refusal`: their transaction was refused before the
   * job took the run): failed, internal, the refusal's code and message in its error message, its event, audited
   * (ai.run_internal), as a run whose starter leaves mid-run is (failUnexpectedly). A run taken or finished meanwhile is
   * left alone; in a deleted organization (whose deletion cancelled its runs) nothing is written. The job is done either
   * way, but for a database error (thrown: the queue retries the job).
   */
  private async failUntakenRun(job: Job, runId: string, meta: RequestMeta, refusal: AppError, why?: string): Promise<void> {
    const errorMessage = `the run failed before it started: ${why ?? 'its starter can no longer run it in this organization (removed from it, their session ended, or their API key revoked)'}: ${refusal.code}: ${refusal.message}`;
    const failed = await this.db.tenant(RUN_FAILER, job.orgId, meta, async (tx) => {
      if (!(await repo.takeRun(tx.db, job.orgId, runId, this.lease()))) return undefined;
      const run = await repo.finishRun(tx.db, job.orgId, runId, { status: 'failed', stopReason: 'error', errorClass: 'internal', errorMessage, output: null, finishedAt: this.now() });
      if (run) await Promise.all([this.emitFinished(tx, run), this.auditFinished(tx, run)]);
      return run;
    }).catch((err) => {
      if (err instanceof AppError && err.status < 500) return undefined;
      throw err;
    });
    if (failed) this.logger.warn(`job ${job.id}: run ${runId} failed before it started: ${refusal.code}: ${refusal.message}`);
  }

  /**
   * Releases the lease on a job's run whose execution here failed (an unexpected error), so that its job's retry takes it
   * again, and the budget reservation of the LLM call it had in flight (settleCallInFlight). A run finished meanwhile
   * (cancelled, swept) is left as it is, but for its call in flight (a cancel mid-call leaves it to the execution).
   */
  private async releaseRun(s: StartedRun, inFlight: InFlight): Promise<void> {
    await this.db.tenant(s.principal, s.orgId, s.meta, async (tx) => {
      await this.settleCallInFlight(tx, s, inFlight);
      await repo.releaseRun(tx.db, s.orgId, s.run.id);
    });
  }

  /**
   * Settles, in the transaction of a failed execution (`tx`: releaseRun, failUnexpectedly), the budget reservation of the
   * LLM call the run still has in flight, its step not stored: running, the call it is marked with (storing its step
   * clears the mark); cancelled while the call was in flight (a cancel keeps the mark, and the cancelled run still takes
   * the call's step), the loop's call (`inFlight.call`) if its step is not stored: a cancel mid-call leaves both the call
   * and the run's event to the execution, which emits it once this transaction has stored the call (finish); failed by the
   * sweep (worker_lost) while the call was in flight, the loop's call if its step is not stored: the sweep cleared the
   * run's mark and settled the call's reservation at nothing, and the run takes the call's step (addCallStep). A call the
   * provider answered, or billed for failed attempts (`inFlight.unstored`: the transaction storing it failed), is settled
   * at what it cost and stored as a failed step (internal) with its tokens and cost, which count in the run's; its answer
   * is not used (a job's retry makes the call again, not counting it against maxSteps: resumeConversation); the step keeps
   * the call's detail (its answer, or its failed attempts). Any other is settled at nothing (as failLostRuns does: what
   * the provider billed, if it had the call, is not known), but a swept run's (the sweep did). A call stored, or a run
   * finished otherwise, is left alone. The run is locked before the budget is settled (the order of every transaction
   * touching both: addCallStep). Answers the step stored, if any.
   */
  private async settleCallInFlight(tx: TenantTx, s: StartedRun, inFlight: InFlight): Promise<StepRow | undefined> {
    const call = await repo.lockCallInFlight(tx.db, s.orgId, s.run.id, inFlight.call?.stepNo ?? null);
    if (!call) return undefined;
    await this.refuseDeletedOrganization(tx, call.status);
    const callId = call.status === 'swept' ? inFlight.call?.callId : call.callId;
    if (!callId) return undefined;
    if (call.status !== 'running') {
      if (callId !== inFlight.call?.callId || call.stepStored) return undefined;
      if (call.cancelledMidCall) this.cancelEventOwed.add(s.run.id);
    }
    const { unstored } = inFlight;
    if (unstored?.callId !== callId) {
      if (call.status !== 'swept') await this.settle(tx, s.agent.id, callId, new Decimal(0), 0, this.now());
      return undefined;
    }
    await this.settle(tx, s.agent.id, unstored.callId, unstored.cost, totalTokens(unstored.usage), unstored.endedAt);
    const step: StepRow = {
      ...unstored.step, status: 'failed', errorClass: 'internal',
      errorMessage: 'its step could not be stored when the call ended (an internal error): stored with what the provider billed, its answer not used',
    };
    await this.storeCallStep(tx, s.run.id, unstored.callId, step, call.erased);
    return step;
  }

  /**
   * Executes a started run to its end. A budget refusal finishes the run (budget_exceeded) and is thrown as
   * 402 ai.budget_exceeded; every other failure finishes the run with its error class and answers the run: an unexpected
   * one (a database error) as internal, at once, audited, its in-flight call stored with its cost if the provider answered
   * it, its reservation settled at nothing otherwise (no job retries an interactive run; left running, it would wait for
   * the sweep). A job's run is released (releaseRun, the same for its in-flight call) and the error thrown: its job fails,
   * for the queue's retry. Either way a call in flight when a person cancelled the run is settled so too.
   */
  async execute(s: StartedRun, sink?: RunSink): Promise<RunDto> {
    const controller = new AbortController();
    this.active.set(s.run.id, controller);
    const ctx: ToolContext = {
      principal: s.principal, keyScopes: s.keyScopes, orgId: s.orgId, meta: s.meta,
      tenant: (work) => this.db.tenant(s.principal, s.orgId, s.meta, work),
    };
    // the LLM call in flight whose step is not stored yet, if any (the loop sets it)
    const inFlight: InFlight = {};
    try {
      return await this.loop(s, ctx, controller.signal, sink, inFlight).catch(async (err) => {
        // the budget refused a call: the run is finished (budget_exceeded), the refusal carries it; the run is gone (finish):
        // nothing to fail
        if (err instanceof AppError && ('run' in err || err.code === 'run.not_found')) throw err;
        // an app error (the starter removed from the organization, their key revoked or their session ended mid-run: 404/401,
        // a value the database refused: 400) fails the same way again: the run is failed now, a job's too (no retry)
        if (!s.queued || err instanceof AppError) return this.failUnexpectedly(s, ctx, err as Error, sink, inFlight);
        await this.releaseRun(s, inFlight)
          .catch((e: Error) => this.logger.error(`run ${s.run.id}: its lease was not released after its execution failed (${e.message}); the sweep fails it once the lease passes`));
        throw err;
      });
    } finally {
      this.active.delete(s.run.id);
      this.cutAtShutdownRuns.delete(s.run.id);
      // cancelled, its event left to this execution, which ended before a finishing transaction committed (an error): still owed
      if (this.cancelEventOwed.delete(s.run.id)) {
        await ctx.tenant(async (tx) => {
          const run = await repo.takeCancelEvent(tx.db, s.orgId, s.run.id);
          if (run) await this.emitFinished(tx, run);
        }).catch((err: Error) => this.logger.warn(`run ${s.run.id}: its agent.run.failed event (cancelled) was not emitted: ${err.message}`));
      }
    }
  }

  /**
   * Fails a run whose execution here threw an unexpected error (not a job's: runJob releases those for the queue's retry):
   * failed, internal, with the LLM call it had in flight stored with its cost if the provider answered it, its reservation
   * settled at nothing otherwise (settleCallInFlight: as releaseRun and the sweep do), its event, and audited
   * (ai.run_internal: auditFinished), the actor being who started the run (the transaction's). The call stored so is
   * streamed as a step, as any call is. A run finished meanwhile (cancelled) is answered as it is, its cut call settled so
   * too. An app error (a job's run too: execute) fails it so, its code and message in the run's error message and in the
   * streamed error event. Should the starter no longer be able to open a transaction in the organization (removed from
   * it, their API key revoked, their session ended: 404, 401), the run is failed as RUN_FAILER, whose transaction opens
   * in a live organization (a deleted one's runs were cancelled by its deletion: nothing is written there, the error is
   * thrown). Should this transaction fail too (the database is gone), the error is thrown: the sweep fails the run once
   * its lease passes.
   */
  private async failUnexpectedly(s: StartedRun, ctx: ToolContext, err: Error, sink: RunSink | undefined, inFlight: InFlight): Promise<RunDto> {
    const app = err instanceof AppError ? err : undefined;
    if (app) this.logger.warn(`run ${s.run.id}: its execution failed: ${app.code}: ${app.message}`);
    else this.logger.error(`run ${s.run.id}: its execution failed unexpectedly: ${err.stack ?? err.message}`);
    // the code a 500 answers with (error.filter.ts): the streamed run's error event carries it (an app error's own code), before its result
    const internal = new AppError(HttpStatus.INTERNAL_SERVER_ERROR, 'internal', 'the run failed unexpectedly (an internal error)');
    const errorMessage = app ? `the run failed: ${app.code}: ${app.message}` : internal.message;
    let stored: StepRow | undefined;
    const fail = (c: ToolContext) => this.finish(s, c, { status: 'failed', stopReason: 'error', errorClass: 'internal', errorMessage, output: null }, sink, {
      refusal: app ?? internal,
      before: async (tx) => {
        stored = await this.settleCallInFlight(tx, s, inFlight);
      },
      afterBefore: () => {
        if (stored) sink?.event('step', this.stepEvent(stored));
      },
    });
    return fail(ctx).catch((e: Error) => {
      if (!(e instanceof AppError) || e.status >= 500) throw e;
      return fail({ ...ctx, tenant: (work) => this.db.tenant(RUN_FAILER, s.orgId, s.meta, work) });
    }).catch((e: Error) => {
      this.logger.error(`run ${s.run.id}: it was not failed after its execution failed (${e.message}); the sweep fails it once its lease passes`);
      throw err;
    });
  }

  private async loop(s: StartedRun, ctx: ToolContext, signal: AbortSignal, sink: RunSink | undefined, inFlight: InFlight): Promise<RunDto> {
    const { agent, run } = s;
    const provider = this.provider(s.connection);
    // an API key is offered only the tools its scopes reach (the others are refused if asked for: runTool)
    const definitions = this.tools.definitions(agent.tools.filter((name) => !this.tools.keyRefusal(name, s.keyScopes)));
    const messages: ChatMessage[] = [
      { role: 'system', content: agent.instructions || 'You are a helpful assistant for the organization\'s books.' },
      ...s.input,
    ];
    // after the steps stored so far: a job's run taken again after its execution failed keeps them (they were billed)
    let stepNo = run.steps;
    // a job's run taken again resumes its conversation: the calls it stored count against maxSteps, the model is handed
    // their messages and tool results, and the tools of its last call that stored no result run first (the call in flight
    // when it failed is made again: stored as unused with its cost if it was answered, its reservation settled at nothing
    // if not: releaseRun)
    const resumed = resumeConversation(s.steps ?? []);
    messages.push(...resumed.messages);
    let lastContent: string | null = resumed.lastContent;
    sink?.event('run', { id: run.id, agentId: agent.id, status: 'running' });
    const cancelled = { status: 'cancelled', stopReason: 'cancelled', errorClass: 'cancelled', errorMessage: 'the run was cancelled' } as const;
    // each message and tool schema is tokenized once, whatever the number of calls (messages are only added)
    const tokenMemo = new WeakMap<object, number>();
    /** Runs the tools the model asked for, as the person who started the run, each stored as a step: false once the run is no longer running. */
    const runTools = async (asked: readonly ToolCall[]): Promise<boolean> => {
      // an answer's calls past MAX_TOOL_CALLS_PER_ANSWER are refused first, in one step (a resumed run's pending calls are
      // those of one answer: past the refusal, at most MAX_TOOL_CALLS_PER_ANSWER are left)
      const toolCalls = asked.slice(0, MAX_TOOL_CALLS_PER_ANSWER);
      const refused = asked.slice(MAX_TOOL_CALLS_PER_ANSWER);
      if (refused.length) {
        const at = this.now();
        const refusedStep = {
          stepNo: stepNo + 1, kind: 'tool_call' as const, name: REFUSED_TOOL_CALLS_STEP, status: 'failed' as const, errorClass: 'tool_error',
          errorMessage: `${refused.length} tool call(s) past the ${MAX_TOOL_CALLS_PER_ANSWER} an answer may make were not run`, startedAt: at, endedAt: at,
          detail: { toolCallIds: refused.map((c) => c.id), names: refused.map((c) => c.name) },
        };
        const ok = await ctx.tenant(async (tx) => {
          if (!(await repo.lockRunning(tx.db, s.orgId, run.id))) return false;
          await repo.addStep(tx.db, s.orgId, run.id, refusedStep, this.lease());
          return true;
        });
        if (!ok) return false;
        stepNo++;
      }
      for (const tc of toolCalls) {
        sink?.event('tool_call', { id: tc.id, name: tc.name, arguments: tc.arguments });
        const toolStarted = this.now();
        const { answer, error } = await this.runTool(ctx, agent, tc.name, tc.arguments);
        stepNo++;
        const toolStep = {
          stepNo, kind: tc.name === 'search_knowledge' ? 'retrieval' as const : 'tool_call' as const, name: tc.name, status: error ? 'failed' as const : 'succeeded' as const,
          errorClass: error ? 'tool_error' : null, errorMessage: error ?? null, startedAt: toolStarted, endedAt: this.now(),
          detail: { toolCallId: tc.id, arguments: tc.arguments, result: error ? null : answer },
        };
        const ok = await ctx.tenant(async (tx) => {
          if (!(await repo.lockRunning(tx.db, s.orgId, run.id))) return false;
          await repo.addStep(tx.db, s.orgId, run.id, toolStep, this.lease());
          return true;
        });
        if (!ok) return false;
        sink?.event('tool_result', { id: tc.id, name: tc.name, ok: !error, error: error ?? undefined });
        messages.push(toolMessage(tc.id, error, answer));
      }
      for (const tc of refused) messages.push(toolMessage(tc.id, refusedToolCallError, null));
      return true;
    };
    if (resumed.pendingTools.length && !(await runTools(resumed.pendingTools))) return this.finish(s, ctx, { ...cancelled, output: lastContent }, sink);
    for (let call = resumed.calls; call < agent.maxSteps; call++) {
      if (signal.aborted) return this.finish(s, ctx, { ...cancelled, output: lastContent }, sink);
      // ---- one transaction before the call: still running? the prices in effect; the worst case reserved against every budget
      const startedAt = this.now();
      const counted = countChatInputTokens(messages, definitions, tokenMemo);
      const callId = randomUUID();
      const expires = this.callExpiry(startedAt);
      let prices: Prices | undefined;
      let reasoning = false;
      // the call's worst case, at its model's input margin (the catalog's: its tokenizer may count more than o200k_base)
      let worstInput = 0;
      let worstTokens = 0;
      // whether the call holds a reservation (some budget applied when it reserved): its retries extend it, else reserve anew
      let held = false;
      try {
        prices = await ctx.tenant(async (tx) => {
          const { prices: p, reasoning: r, margin } = await this.modelAt(tx, agent.modelId, startedAt);
          reasoning = r;
          worstInput = inputWorstCase(counted, margin);
          worstTokens = worstInput + agent.maxOutputTokens;
          // the run marked as calling (a cancel meanwhile leaves its event to this execution) and the reservation travel
          // together; a run no longer running rolls the reservation back
          const [running, reserved] = await Promise.allSettled([
            repo.startCall(tx.db, s.orgId, run.id, callId, expires),
            this.reserve(tx, agent.id, callId, worstCaseCost(worstInput, agent.maxOutputTokens, p), worstTokens, startedAt, expires),
          ]);
          if (running.status === 'rejected') throw running.reason;
          if (!running.value) throw new NotRunning();
          if (reserved.status === 'rejected') throw reserved.reason;
          held = reserved.value;
          return p;
        }).catch((err) => {
          if (err instanceof NotRunning) return undefined;
          throw err;
        });
      } catch (err) {
        if (!(err instanceof BudgetRefusal)) throw err;
        this.metrics.aiBudgetRefusals.inc();
        namingRun(err.error, run.id);
        const step = {
          stepNo: ++stepNo, kind: 'llm_call' as const, name: agent.modelId, status: 'failed' as const, errorClass: 'budget_exceeded', errorMessage: err.message,
          startedAt, endedAt: this.now(), attempts: 0, detail: { refused: err.error.details ?? null },
        };
        const finished = await this.finish(s, ctx, { status: 'failed', stopReason: 'error', errorClass: 'budget_exceeded', errorMessage: err.message, output: lastContent }, sink, {
          refusal: err.error,
          before: async (tx) => {
            if (await repo.lockRunning(tx.db, s.orgId, run.id)) await repo.addStep(tx.db, s.orgId, run.id, step, this.lease());
          },
        });
        throw Object.assign(err.error, { run: finished });
      }
      if (!prices) return this.finish(s, ctx, { ...cancelled, output: lastContent }, sink);
      // reserved: the call is in flight until its step is stored
      inFlight.call = { callId, stepNo: stepNo + 1 };
      // ---- the call, with bounded retries
      let result: ChatResult;
      let attempts = 1;
      const failures: string[] = [];
      // what the provider bills for failed attempts it had (cut, cancelled, broken off): never nothing once it had the call
      const billedFailures: TokenUsage = { input: 0, output: 0, cachedInput: 0, cacheWrite: 0 };
      let lastFailure: LlmError | undefined;
      const onFailed = (e: LlmError, attempt: number) => {
        lastFailure = e;
        failures.push(withoutNul(`attempt ${attempt}: ${e.message}`));
        // an answer cut for its size (AnswerTooLarge) is billed at most maxOutputTokens of output, what the call asked for
        const output = () => (e instanceof AnswerTooLarge ? agent.maxOutputTokens : outputTokens(e.received!.content, e.received!.toolCalls));
        // no usage reported (a cut attempt, the shutdown's among them): its input billed at the model's worst case, what the
        // reservation held, not the o200k_base count its own tokenizer may exceed (claude-sonnet-4: 1.5x + 400)
        if (e.received) addUsage(billedFailures, e.received.usage ?? { input: worstInput, cachedInput: 0, cacheWrite: 0, output: output() });
      };
      // the reservation covers one attempt's worst case; before a retry it takes what the failed attempts billed since it
      // last reserved (so it holds what is billed so far plus the retry's worst case), or the budget refuses the retry
      // (BudgetRefusal: no retry). A run no longer running is not retried (NotRunning): cancelled in another process, the
      // retry's answer would not be used; failed by the sweep (this execution outlived its lease), the call's reservation
      // was released, and the retry would be charged against none, past the limit a later call reserved up to. Checked
      // with the run locked, before the budgets (the sweeps' order): while it is running, its call's reservation is held.
      // `reservedFailures`: the failed attempts' tokens reserved so far. Before each retry every budget that applies then
      // holds what the attempts billed so far and the retry's worst case (`whole`), or refuses the retry: one the call holds
      // a reservation on takes what was billed since it last reserved, even nothing; one it holds none on (created while
      // the call was in flight) the whole. A call that holds none at all (no budget applied when it reserved: review rH;
      // its budgets deleted since: review of 74f2ceb) reserves the whole, as a call does; none still applying, nothing.
      const callPrices: Prices = prices;
      const worstCost = worstCaseCost(worstInput, agent.maxOutputTokens, prices);
      const reservedFailures: TokenUsage = { input: 0, output: 0, cachedInput: 0, cacheWrite: 0 };
      const reserveRetry = async () => {
        const tokens = totalTokens(billedFailures) - totalTokens(reservedFailures);
        const cost = Decimal.max(0, costOf(billedFailures, callPrices).minus(costOf(reservedFailures, callPrices)));
        const whole = { cost: worstCost.plus(costOf(billedFailures, callPrices)), tokens: worstTokens + totalTokens(billedFailures) };
        await ctx.tenant(async (tx) => {
          const locked = await repo.lockRun(tx.db, s.orgId, run.id);
          if (locked?.status !== 'running') {
            const state = !locked ? 'gone' : locked.status === 'failed' ? `failed (${locked.errorClass})` : locked.status;
            throw new NotRunning(`the run is no longer running: ${state}`);
          }
          // past the call's longest duration its lease ran out too (startCall set both): the sweep may fail the run any
          // moment, and another call's reservation may already have taken its expired reservation away (review rH). A
          // retry that could still be running when it expires is not made either: another instance's clock, ahead of this
          // one, deletes it earlier (review rJ: 61 s of skew, the retry charged against none). The last retry a call can
          // make legitimately ends retryMaxMs and a minute before (callExpiry): the margin refuses none of them.
          if (this.now().getTime() + this.config.ai.timeoutMs + 30_000 >= expires.getTime()) {
            throw new CallExpired('the call outlived its longest duration: its reservation expired');
          }
          if (held) held = await this.reserve(tx, agent.id, callId, cost, tokens, this.now(), expires, { whole });
          if (!held) held = await this.reserve(tx, agent.id, callId, whole.cost, whole.tokens, this.now(), expires, 'retry');
        });
        Object.assign(reservedFailures, billedFailures);
      };
      // a streamed attempt after a failed one starts the answer over: `retry` tells the client to drop the earlier attempts' tokens
      let attempt = 0;
      try {
        const r = await withRetries(
          async () => {
            if (attempt > 0) await reserveRetry();
            if (++attempt > 1) sink?.event('retry', { attempt });
            return provider.chat({
              model: agent.modelId, reasoning, messages, tools: definitions, temperature: agent.temperature, maxOutputTokens: agent.maxOutputTokens,
              stream: !!sink, onToken: sink ? (delta) => sink.event('token', { delta }) : undefined,
            }, { signal });
          },
          { maxRetries: this.config.ai.maxRetries, baseMs: this.config.ai.retryBaseMs, maxMs: this.config.ai.retryMaxMs },
          this.sleeper, signal, onFailed,
        );
        result = storableResult(r.result);
        attempts = r.attempts;
      } catch (caught) {
        // the budget refused a retry: the failed attempts are settled at what they billed, the run fails (budget_exceeded)
        const refused = caught instanceof BudgetRefusal ? caught : undefined;
        if (refused) namingRun(refused.error, run.id);
        // the run finished before a retry (reserveRetry): the call failed as its last attempt did, the run stays as it is;
        // the call expired (CallExpired, the run still running): the call and the run failed as timed out
        const stopped = caught instanceof NotRunning && lastFailure
          ? { errorClass: caught instanceof CallExpired ? 'timeout' as const : lastFailure.errorClass, message: caught.message } : undefined;
        // any other error than the provider's or the budget's (reserveRetry's transaction: the starter removed or their key
        // revoked between attempts, a database error) is thrown on below, once the failed attempts the provider billed are
        // recorded as unstored: the execution's failure charges and stores them (settleCallInFlight)
        const unexpected = !refused && !stopped && !(caught instanceof LlmError);
        const err = refused
          ? { errorClass: 'budget_exceeded' as const, message: `not retried: ${refused.message}`, attempts: failures.length }
          : stopped
            ? { errorClass: stopped.errorClass, message: `not retried: ${stopped.message}`, attempts: failures.length }
            : unexpected
              ? { errorClass: 'internal' as const, message: `not retried: ${(caught as Error).message}`, attempts: failures.length }
              : (caught as LlmError & { attempts?: number });
        const endedAt = this.now();
        // settled at what the provider bills (zero only if it never had the call), in the transaction that finishes the run
        const cost = costOf(billedFailures, prices);
        if (totalTokens(billedFailures) > 0) this.metrics.countLlmCall(s.orgId, agent.id, agent.modelId, billedFailures, cost.toNumber());
        const step = {
          stepNo: ++stepNo, kind: 'llm_call' as const, name: agent.modelId, status: 'failed' as const, errorClass: err.errorClass, errorMessage: err.message, startedAt, endedAt,
          streamed: !!sink, attempts: err.attempts ?? failures.length, usage: billedFailures, tokensCounted: true, cost,
          prices: pricesJson(prices), detail: { failures, ...(refused ? { refused: refused.error.details ?? null } : {}) },
        };
        const isCancel = err.errorClass === 'cancelled';
        // billed although it failed: stored by the execution's failure should this transaction fail
        if (totalTokens(billedFailures) > 0) inFlight.unstored = { callId, step, usage: billedFailures, cost, endedAt };
        if (unexpected) throw caught;
        let stored = false;
        const finished = await this.finish(s, ctx, {
          status: isCancel ? 'cancelled' : 'failed', stopReason: isCancel ? 'cancelled' : 'error', errorClass: err.errorClass, errorMessage: err.message, output: lastContent,
        }, sink, {
          refusal: refused?.error,
          before: async (tx) => {
            ({ stored } = await this.addCallStep(tx, agent.id, run.id, callId, step));
          },
          // a run gone meanwhile (its agent deleted) takes no step: none is streamed
          afterBefore: () => {
            if (stored) sink?.event('step', this.stepEvent(step));
          },
        });
        if (!refused) return finished;
        this.metrics.aiBudgetRefusals.inc();
        throw Object.assign(refused.error, { run: finished });
      }
      // ---- one transaction after the call: settled to the tokens reported (when not, the input at the model's worst case, as
      // reserved, and the output counted) at the prices in effect, and the step
      const endedAt = this.now();
      // the answered attempt's tokens, plus those of failed attempts the provider billed
      const usage: TokenUsage = addUsage(
        result.usage ? { ...result.usage } : { input: worstInput, cachedInput: 0, cacheWrite: 0, output: outputTokens(result.content ?? '', result.toolCalls) },
        billedFailures,
      );
      const cost = costOf(usage, prices);
      this.metrics.countLlmCall(s.orgId, agent.id, agent.modelId, usage, cost.toNumber());
      const llmStep = {
        stepNo: ++stepNo, kind: 'llm_call' as const, name: agent.modelId, status: 'succeeded' as const, startedAt, endedAt, streamed: !!sink, attempts,
        timeToFirstTokenMs: result.timeToFirstTokenMs, usage, tokensCounted: !result.usage, cost, prices: pricesJson(prices),
        detail: {
          finishReason: result.finishReason, content: result.content, toolCalls: result.toolCalls, ...(failures.length ? { failures } : {}),
          ...(totalTokens(billedFailures) ? { failedAttemptsUsage: billedFailures } : {}),
        },
      };
      // answered and billed: stored by the execution's failure should the transaction storing it fail
      inFlight.unstored = { callId, step: llmStep, usage, cost, endedAt };
      const answered = result.toolCalls.length === 0;
      if (answered) {
        // the answer: settle, step and finish in one transaction
        let stored = false;
        return this.finish(s, ctx, { status: 'succeeded', stopReason: 'answer', errorClass: null, errorMessage: null, output: result.content ?? '' }, sink, {
          before: async (tx) => {
            ({ stored } = await this.addCallStep(tx, agent.id, run.id, callId, llmStep));
          },
          // a run gone meanwhile (its agent deleted) takes no step: none is streamed
          afterBefore: () => {
            if (stored) sink?.event('step', this.stepEvent(llmStep));
          },
        });
      }
      const recorded = await ctx.tenant((tx) => this.addCallStep(tx, agent.id, run.id, callId, llmStep));
      inFlight.call = inFlight.unstored = undefined;
      // stored on a run cancelled during the call too (its cost counts in the run's): streamed before the run's finish
      if (recorded.stored) sink?.event('step', this.stepEvent(llmStep));
      if (!recorded.running) return this.finish(s, ctx, { ...cancelled, output: lastContent }, sink);
      lastContent = result.content;
      // ---- the tools the model asked for, as the person who started the run
      messages.push({ role: 'assistant', content: result.content, toolCalls: result.toolCalls });
      if (!(await runTools(result.toolCalls))) return this.finish(s, ctx, { ...cancelled, output: lastContent }, sink);
    }
    return this.finish(s, ctx, { status: 'succeeded', stopReason: 'max_steps', errorClass: null, errorMessage: null, output: lastContent }, sink);
  }

  /** A tool's answer, or the error the model is told about (bad arguments, a refused query, a tool it may not use). */
  private async runTool(ctx: ToolContext, agent: AgentDto, name: string, rawArgs: string): Promise<{ answer?: unknown; error?: string }> {
    const tool = agent.tools.includes(name) ? this.tools.get(name) : undefined;
    if (!tool) return { error: `tool ${name} is not available to this agent` };
    const refused = this.tools.keyRefusal(name, ctx.keyScopes);
    if (refused) return { error: refused };
    let args: Record<string, unknown>;
    try {
      // a NUL escaped in the JSON text (\u0000) is dropped from the values too: no tool could store it
      const parsed = JSON.parse(rawArgs || '{}', (_key, value: unknown) => (typeof value === 'string' ? withoutNul(value) : value));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      args = parsed;
    } catch {
      return { error: 'the arguments are not a JSON object' };
    }
    try {
      return { answer: await tool.run({ ...ctx, knowledgeCollectionIds: agent.knowledgeCollectionIds }, args) };
    } catch (err) {
      if (err instanceof ToolArgumentError || err instanceof AppError) return { error: err.message };
      this.logger.warn(`tool ${name} failed: ${(err as Error).message}`);
      return { error: `tool ${name} failed` };
    }
  }

  /**
   * The prices of `modelId` in effect at `at`, from the model's price list, and whether it is a reasoning model (its
   * catalog row's flag): read at most every PRICE_LIST_TTL_MS.
   */
  private async modelAt(tx: TenantTx, modelId: string, at: Date): Promise<{ prices: Prices; reasoning: boolean; margin: InputMargin }> {
    let entry = this.catalog.get(modelId);
    if (!entry || performance.now() - entry.readAt > PRICE_LIST_TTL_MS) {
      entry = { ...(await repo.modelForRuns(tx.db, modelId)), readAt: performance.now() };
      this.catalog.set(modelId, entry);
    }
    const p = entry.prices.find((x) => new Date(x.effectiveFrom).getTime() <= at.getTime());
    if (!p) throw new Error(`model ${modelId} has no price in effect at ${at.toISOString()}`);
    return { prices: p, reasoning: entry.reasoning, margin: entry.margin };
  }

  /** The provider client of a connection, kept for the next run with the same endpoint, key, timeout and way of reaching it (guarded or not). */
  private provider(connection: ProviderConnection): LlmProvider {
    const key = JSON.stringify([connection.baseUrl, connection.apiKey, connection.timeoutMs, connection.fetch ? 'organization' : 'platform']);
    let provider = this.providers.get(key);
    if (!provider) {
      if (this.providers.size >= PROVIDER_CACHE_MAX) this.providers.delete(this.providers.keys().next().value!);
      provider = createLlmProvider(connection, this.timer);
      this.providers.set(key, provider);
    }
    return provider;
  }

  /** When a call started at `now` has surely ended: its longest possible duration (all attempts, all waits) and a minute. */
  private callExpiry(now: Date): Date {
    const ai = this.config.ai;
    return new Date(now.getTime() + (ai.timeoutMs + ai.retryMaxMs) * (ai.maxRetries + 1) + 60_000);
  }

  /**
   * The run's lease from now, renewed by each write of its execution: the next write comes within a step's longest
   * duration, an LLM call's (a tool's is shorter: its provider calls and its SQL time out sooner). Past it, the instance
   * executing the run is gone: failLostRuns finishes the run.
   */
  private lease(): Date {
    return this.callExpiry(this.now());
  }

  /**
   * Locks the run and adds an LLM call's step (its tokens and cost: what was settled against the budgets) while it is
   * running, or once cancelled: a call in flight when a person cancelled the run (through the API, here or in another
   * process) was billed, and the database takes its step on the cancelled run. So too once the sweep failed it
   * (worker_lost: this execution outlived its lease, a paused process, a call slower than its longest duration): the sweep
   * settled the call's reservation at nothing, the budget is charged what the provider billed now, and the run takes the
   * call's step (as the call ended: its answer is not used), so that its cost is what the budget was charged. Cancelled
   * while the call was in flight, the run's event is this execution's (the cancel left it: RunsService.cancel); swept, the
   * sweep emitted it, with the cost before the call's; either way the step is audited (storeCallStep). The call
   * (`callId`: its reservation) is settled at the step's tokens and cost (what the provider billed), after the run is
   * locked: the sweep and the cancel lock the run first too (then the sweep settles), so that no two of them wait for each
   * other (the sweep holding the run, this transaction the reservation). Answers whether the step was stored (not on a
   * run gone: its agent deleted) and whether the run is still running.
   */
  private async addCallStep(tx: TenantTx, agentId: string, runId: string, callId: string, step: StepRow): Promise<{ stored: boolean; running: boolean }> {
    const run = await repo.lockRun(tx.db, tx.orgId, runId);
    await this.refuseDeletedOrganization(tx, run?.status);
    await this.settle(tx, agentId, callId, step.cost ?? new Decimal(0), totalTokens(step.usage ?? { input: 0, output: 0, cachedInput: 0, cacheWrite: 0 }), step.endedAt);
    const stored = run?.status === 'running' || run?.status === 'cancelled' || (run?.status === 'failed' && run.errorClass === 'worker_lost');
    if (stored) await this.storeCallStep(tx, runId, callId, step, !!run?.erased);
    if (run?.cancelledMidCall) this.cancelEventOwed.add(runId);
    return { stored, running: run?.status === 'running' };
  }

  /**
   * Refuses (404, the transaction rolls back) a transaction of an execution that finds its run (locked: `status`) finished
   * by its organization's deletion (cancelRunsOfDeletedOrganization): let in before the deletion committed, it waited for the
   * run, and writes nothing in the deleted organization (no step, no settlement, no audit, no event), as any transaction
   * begun after it could not. Checked only once the run is no longer running: the deletion finishes every running run first.
   */
  private async refuseDeletedOrganization(tx: TenantTx, status: string | undefined): Promise<void> {
    if (status !== undefined && status !== 'running' && (await repo.organizationDeleted(tx.db, tx.orgId))) throw PlatformErrors.notFound('organization', tx.orgId);
  }

  /**
   * Stores an LLM call's step on its run (locked by the caller). On a run finished while the call was in flight (a late
   * call: cancelled, or failed by the sweep), the step changes the run's counters after its finish was audited (with the
   * totals before the call): audited here, in the same transaction, as ai.run_late_call with the run's totals before and
   * after the step, the call and the step's status. The run's event is not emitted again (a cancel mid-call left it to
   * the execution, finish; the sweep's stands). On a run whose content a person's erasure took (`erased`: it cancelled the
   * run, or found it finished), the step keeps its tokens, cost and status but no content: no detail (the model's answer,
   * its failed attempts), no error message.
   */
  private async storeCallStep(tx: TenantTx, runId: string, callId: string, step: StepRow, erased: boolean): Promise<void> {
    const after = await repo.addStep(tx.db, tx.orgId, runId, erased ? { ...step, detail: {}, errorMessage: null } : step, this.lease());
    if (after.status === 'running') return;
    const u = step.usage ?? { input: 0, output: 0, cachedInput: 0, cacheWrite: 0 };
    await this.audit.record(tx, {
      action: 'ai.run_late_call', entityType: 'ai_run', entityId: runId,
      before: {
        status: after.status, errorClass: after.errorClass, cost: new Decimal(after.cost).minus(step.cost ?? 0).toFixed(8), steps: after.steps - 1,
        usage: {
          inputTokens: after.usage.inputTokens - u.input, outputTokens: after.usage.outputTokens - u.output,
          cachedInputTokens: after.usage.cachedInputTokens - u.cachedInput, cacheWriteTokens: after.usage.cacheWriteTokens - u.cacheWrite,
        },
      },
      after: {
        status: after.status, errorClass: after.errorClass, cost: after.cost, steps: after.steps, usage: after.usage,
        callId, stepNo: step.stepNo, stepStatus: step.status, stepErrorClass: step.errorClass ?? null,
      },
    });
  }

  /**
   * Reserves a call's worst case in `tx` until `expires` (`retry`: a retry's, of a call holding no reservation; `whole`:
   * before a retry, adds to the call's reservations what its failed attempts billed since, and reserves `whole` on a
   * budget it holds none on); a refusal is thrown as BudgetRefusal (the transaction rolls back: nothing stays reserved).
   * Answers whether any budget applied (the call holds a reservation).
   */
  private async reserve(tx: TenantTx, agentId: string, callId: string, cost: Decimal, tokens: number, now: Date, expires: Date,
    how: 'call' | 'retry' | { whole: { cost: Decimal; tokens: number } } = 'call'): Promise<boolean> {
    const retry = how !== 'call';
    // a reservation outlives the call's longest possible duration (callExpiry), then it expires
    const rows: ReservationRow[] = typeof how === 'object'
      ? await repo.extendReservation(tx.db, agentId, callId, cost, tokens, how.whole, now, expires)
      : await repo.reserve(tx.db, agentId, callId, cost, tokens, now, expires);
    const refused = budgetRefusal(rows, { cost, tokens }, retry ? 'retry of the call' : 'call');
    if (!refused) return rows.length > 0;
    throw new BudgetRefusal(refused);
  }

  /**
   * The streamed `step` event of an LLM call's step, once stored: every call made has one (a failed call, a call whose
   * answer was not used: status failed, with its error class), so that the events' costs add up to the run's. A call the
   * budget refused was not made: its `error` event says so.
   */
  private stepEvent(step: StepRow) {
    const usage = step.usage ?? { input: 0, output: 0, cachedInput: 0, cacheWrite: 0 };
    return {
      stepNo: step.stepNo, kind: step.kind, status: step.status, errorClass: step.errorClass ?? null,
      usage: { inputTokens: usage.input, outputTokens: usage.output, cachedInputTokens: usage.cachedInput, cacheWriteTokens: usage.cacheWrite },
      cost: (step.cost ?? new Decimal(0)).toFixed(8),
    };
  }

  /** Settles a call and emits each threshold crossed now (once per budget, threshold and month: the UPDATE marks it). */
  private settle(tx: TenantTx, agentId: string, callId: string, cost: Decimal, tokens: number, now: Date): Promise<void> {
    return settleBudgets(tx, agentId, callId, cost, tokens, now);
  }

  /**
   * Finishes the run (if still running: a cancel may have finished it) with its event and its audit (auditFinished), in
   * one transaction that first runs `opts.before` (the last step, the last settlement), and answers the run with its trace.
   */
  private async finish(s: StartedRun, ctx: ToolContext, f: Omit<RunFinish, 'finishedAt'>, sink?: RunSink,
    opts: { refusal?: AppError; before?: (tx: TenantTx) => Promise<unknown>; afterBefore?: () => void } = {}): Promise<RunDto> {
    const { refusal } = opts;
    const finishedAt = this.now();
    // cut as the server shut down (cutAtShutdown): its message and its audit (whose actor is its starter) say so, not
    // read as if its starter cancelled it
    const shutdown = f.status === 'cancelled' && this.cutAtShutdownRuns.has(s.run.id);
    const done = await ctx.tenant(async (tx) => {
      await opts.before?.(tx);
      const run = await repo.finishRun(tx.db, s.orgId, s.run.id, { ...f, ...(shutdown ? { errorMessage: SERVER_SHUTDOWN_MESSAGE } : {}), finishedAt });
      // the trace is read while the event is written (pipelined); a run finished meanwhile (cancelled) is read as it is
      const trace = repo.steps(tx.db, s.orgId, s.run.id);
      if (run) {
        const [, steps] = await Promise.all([this.emitFinished(tx, run), trace, this.auditFinished(tx, run, shutdown ? { reason: 'server_shutdown' } : {})]);
        return { ...run, trace: steps };
      }
      const [current, steps] = await Promise.all([repo.getRun(tx.db, s.orgId, s.agent.id, s.run.id), trace]);
      // cancelled while it executed (here, or elsewhere while a call was in flight): its event is this transaction's, with
      // the counters of every step stored (the cut call's, added by `before`, included): the cancel has committed (the
      // run reads as cancelled), and this execution, the only one adding steps, adds none after this.
      // Taken with the run's mark (once: the sweep may have emitted it, had this execution outlived the mark).
      if (current?.status === 'cancelled' && this.cancelEventOwed.has(s.run.id)) {
        const owed = await repo.takeCancelEvent(tx.db, s.orgId, s.run.id);
        if (owed) await this.emitFinished(tx, owed);
      }
      // gone (its agent, or the run, deleted meanwhile): nothing to answer; what the transaction did (the call's settlement) stands
      return current ? { ...current, trace: steps } : undefined;
    });
    if (!done) throw AgentErrors.notFound('run', s.run.id);
    // committed: the run's event was emitted (by this transaction, or by the cancel's if it left none to this execution)
    this.cancelEventOwed.delete(s.run.id);
    opts.afterBefore?.();
    if (refusal) sink?.event('error', { code: refusal.code, message: refusal.message, details: refusal.details });
    sink?.event('result', done);
    return done;
  }

  /** The event of a finished run (runFinishedEvent). */
  private emitFinished(tx: TenantTx | { db: Db; orgId: string }, run: RunDto): Promise<void> {
    return emitEvent(tx, ...runFinishedEvent(run));
  }

  /**
   * Audits a run's finish, in the transaction that wrote its terminal status (every finish goes through here: the
   * execution's (finish), the cancel's and the sweep's), as the transaction's principal: who started the run (the member of
   * a trigger), the person cancelling, the sweep. The action is ai.run_ and how it ended: ai.run_succeeded (an answer, or
   * maxSteps reached), ai.run_cancelled, and for a failed run its error class where it has an action of its own,
   * ai.run_budget_exceeded (a budget refused a call), ai.run_internal (the execution failed unexpectedly),
   * ai.run_worker_lost (the sweep: its instance was lost, or no job took it), else ai.run_failed (the provider's failure:
   * provider_error, provider_rate_limited, timeout). Before: running; after: the status, error class and stop reason, and
   * the run's totals as its row has them then (cost, tokens, steps; a call in flight when it was cancelled or swept adds
   * its step later). The row travels with the transaction's COMMIT: no round trip of its own.
   */
  private auditFinished(tx: TenantTx, run: RunDto, extra: Record<string, unknown> = {}): Promise<void> {
    return this.audit.record(tx, runFinishedAudit(run, extra));
  }

  /**
   * The agent.run.failed events a cancel left to an execution that died before emitting them (its process stopped during
   * the LLM call): once the run's mark has passed (the call's longest possible duration), anyone emits them, each once
   * (the mark is cleared in the event's transaction; two instances sweeping skip each other's rows). A run marked with
   * that call (call_in_flight_id) also has the call's budget reservation to release, which only its execution would have
   * settled: releaseDeadCancelledCalls does both. Answers the runs.
   */
  async emitOwedCancelEvents(now: Date = this.now()): Promise<string[]> {
    const released = await this.releaseDeadCancelledCalls(now);
    const runs = await this.privileged.run('agents.cancel_events', async (db) => {
      const due = await repo.takeDueCancelEvents(db, now);
      for (const run of due) await this.emitFinished({ db, orgId: run.orgId }, run);
      return due;
    });
    if (runs.length) this.logger.warn(`emitted the agent.run.failed event of ${runs.length} cancelled run(s) whose execution did not`);
    return [...released, ...runs.map((r) => r.id)];
  }

  /**
   * The cancelled runs owing their event past their mark whose LLM call was in flight when their execution died: each, in
   * a transaction of its organization as this sweep, is locked and checked again (another sweep, or its execution after
   * all, took the event: left alone), then the mark cleared, agent.run.failed emitted and the call's reservation released
   * (releaseDeadCall). Run, then budget: the order of every transaction touching both. The run keeps its
   * call_in_flight_id (a finished run's row changes only in its counters and mark): settling that call again is a no-op.
   * Answers the runs.
   */
  private async releaseDeadCancelledCalls(now: Date): Promise<string[]> {
    const due = await this.privileged.run('agents.cancel_events', (db) => repo.dueCancelledCalls(db, now));
    const released: string[] = [];
    for (const { orgId, id } of due) {
      await this.db.tenant(CANCEL_EVENT_SWEEPER, orgId, { requestId: `agents-cancel-events:${id}` }, async (tx) => {
        const locked = await repo.lockDueCancelledCall(tx.db, orgId, id, now);
        if (!locked) return;
        // locked, cancelled and owing its event: the update finds it
        const run = await repo.takeCancelEvent(tx.db, orgId, id);
        if (!run) return;
        await this.releaseDeadCall(tx, run, locked.callId, now);
        await this.emitFinished(tx, run);
        released.push(id);
      }).catch((err: Error) => this.logger.error(`run ${id}: the reservation of its cancelled call was not released: ${err.message}`));
    }
    if (released.length) this.logger.warn(`emitted the event of ${released.length} cancelled run(s) whose execution died during an LLM call, its reservation released`);
    return released;
  }

  /**
   * Releases the budget reservation of LLM call `callId` of `run`, cancelled, whose execution died during the call (its mark
   * passed), in `tx`, which holds the run's lock (run, then budget): settled at nothing in the month it was taken (as the
   * lost-runs sweep settles a lost call: what the provider billed is not known; should the execution outlive its mark after
   * all, the call's end charges the budget what it cost and stores its step on the run: addCallStep, settleCallInFlight),
   * audited as the transaction's principal (the sweep, the person cancelling): ai.run_call_released, with the reservations
   * released. A call holding none (its step was stored, which settled it, before its execution died; no budget applies to
   * it) has nothing to settle: neither settled nor audited.
   */
  private async releaseDeadCall(tx: TenantTx, run: RunDto, callId: string, now: Date): Promise<void> {
    const reservations = await repo.callReservations(tx.db, tx.orgId, callId);
    if (!reservations.length) return;
    await this.settle(tx, run.agentId, callId, new Decimal(0), 0, now);
    await this.audit.record(tx, {
      action: 'ai.run_call_released', entityType: 'ai_run', entityId: run.id,
      before: { status: run.status, callId, reservations },
      after: { status: run.status, callId, reservations: [] },
    });
  }

  @Cron(CronExpression.EVERY_MINUTE, { name: 'agents-cancel-events' })
  async onCancelEventsSchedule(): Promise<void> {
    await this.emitOwedCancelEvents().catch((err: Error) => this.logger.error(`owed cancel events were not emitted: ${err.message}`));
  }

  /**
   * Finishes the runs whose executing instance is gone (their lease passed at `now`: it stopped writing), and the job's
   * runs no instance took within QUEUED_RUN_LEASE_MS of their start (their job never started them), as failed,
   * worker_lost, each in a transaction of its organization as this sweep: the reservation of the LLM call it had in
   * flight released as a failed run's call is settled (at nothing: what the provider billed, if it had the call, is not
   * known; should the execution outlive its lease after all, the call's end charges the budget what it cost and stores
   * its step on the run, so that they agree: addCallStep), agent.run.failed emitted, the change audited (auditFinished).
   * Once per run: the run is locked and checked again (another sweep, its execution renewing the lease after all, or its
   * job taking it, wins), before its call is settled: the order of every transaction that touches both (addCallStep), else
   * this sweep and a late call's end would wait for each other. A run whose lease is still valid, however slow, is left
   * alone. Answers the runs failed.
   */
  async failLostRuns(now: Date = this.now()): Promise<string[]> {
    const queuedBefore = new Date(now.getTime() - QUEUED_RUN_LEASE_MS);
    const lost = await this.privileged.run('agents.lost_runs', (db) => repo.lostRuns(db, now, queuedBefore));
    const failed: string[] = [];
    for (const { orgId, id } of lost) {
      await this.db.tenant(LOST_RUN_SWEEPER, orgId, { requestId: `agents-lost-runs:${id}` }, async (tx) => {
        const locked = await repo.lockLostRun(tx.db, orgId, id, now, queuedBefore);
        if (!locked) return;
        const run = await repo.finishRun(tx.db, orgId, id, {
          status: 'failed', stopReason: 'error', errorClass: 'worker_lost', output: null, finishedAt: now,
          errorMessage: locked.taken
            ? 'the instance executing the run stopped before finishing it (its lease on the run passed)'
            : `no instance took the run: its job did not start it within ${QUEUED_RUN_LEASE_MS / 3_600_000} hours (every attempt of the queue failed, or the job was lost)`,
        });
        // locked while running: the update finds it
        if (!run) return;
        if (locked.lostCallId) await this.settle(tx, run.agentId, locked.lostCallId, new Decimal(0), 0, now);
        await this.emitFinished(tx, run);
        await this.auditFinished(tx, run, locked.taken ? {} : { taken: false });
        failed.push(id);
      }).catch((err: Error) => this.logger.error(`run ${id}: its lost execution was not finished: ${err.message}`));
    }
    if (failed.length) this.logger.warn(`failed ${failed.length} run(s) whose executing instance was lost or whose job never started them`);
    return failed;
  }

  @Cron(CronExpression.EVERY_MINUTE, { name: 'agents-lost-runs' })
  async onLostRunsSchedule(): Promise<void> {
    await this.failLostRuns().catch((err: Error) => this.logger.error(`runs of lost instances were not finished: ${err.message}`));
  }

  /**
   * Cuts the execution here of run `runId` as the server shuts down (its event stream: the controller): it finishes
   * cancelled at once, as a cancel cuts it (a call in flight is cut, its step stored with what the provider billed), and
   * its stream ends with its result. An execution no longer here is left alone.
   */
  cutAtShutdown(runId: string): void {
    const execution = this.active.get(runId);
    if (!execution) return;
    this.cutAtShutdownRuns.add(runId);
    execution.abort();
  }

  /**
   * Cancels a running run: finished at once in the database; its execution (here or in another process) stops at its next
   * step. Executing here, it is cut now; executing in another process with an LLM call in flight, that call ends first
   * (it is billed). Either way the execution emits the run's event once the call's step is stored; otherwise (no call in
   * flight elsewhere, no execution at all) the event is emitted here, with the steps stored so far, and a call begun
   * elsewhere whose mark has passed (its execution died during it) has its reservation released (releaseDeadCall).
   */
  async cancel(tx: TenantTx, agentId: string, runId: string): Promise<RunDto> {
    const role = tx.role as RequestRole;
    // locked and read once: the run the checks below see is the one the cancel finishes (its execution's transactions wait)
    const found = await repo.lockRunForCancel(tx.db, tx.orgId, agentId, runId);
    // to a member who is not owner or admin, a run someone else started reads as missing: refused as a role matter (403)
    // for any id they do not see, which says nothing of other members' runs
    if (!found && !ADMIN_ROLES.includes(role)) throw PlatformErrors.error('forbidden.role', 'only the person who started the run, an owner or an admin may cancel it');
    if (!RUNNER_ROLES.includes(role)) throw PlatformErrors.error('forbidden.role', `cancelling a run needs membership of the organization; you are ${tx.role ?? 'not a member'}`);
    if (!found) throw AgentErrors.notFound('run', runId);
    const { run: before, callInFlightUntil, callInFlightId } = found;
    const own = tx.principal.kind === 'user' && before.startedBy === tx.principal.userId;
    if (!own && !ADMIN_ROLES.includes(role)) {
      throw PlatformErrors.error('forbidden.role', 'only the person who started the run, an owner or an admin may cancel it');
    }
    if (before.status !== 'running') throw AgentErrors.error('ai.run_finished', `run ${runId} is already ${before.status}`);
    const execution = this.active.get(runId);
    const now = this.now();
    // executing here: the event is the execution's, marked owed (should this process die, the sweep emits it past the mark)
    const run = await repo.finishRun(tx.db, tx.orgId, runId, {
      status: 'cancelled', stopReason: 'cancelled', errorClass: 'cancelled', errorMessage: cancelledBy(tx.principal), output: null, finishedAt: now,
    }, execution ? this.callExpiry(now) : undefined);
    // running and locked: the update finds it
    if (!run) throw AgentErrors.error('ai.run_finished', `run ${runId} is already finished`);
    // a call in flight in another process (the run was marked when it began): its step adds to the cost after this commits
    const midCall = !execution && callInFlightUntil !== null && callInFlightUntil > now;
    // a call begun elsewhere whose mark has passed: its execution died during it (neither the sweep of owed events nor the
    // lost-runs sweep will see the run, cancelled now with no event owed), its reservation left: released here
    if (!execution && !midCall && callInFlightId) await this.releaseDeadCall(tx, run, callInFlightId, now);
    if (!execution && !midCall) await this.emitFinished(tx, run);
    await this.auditFinished(tx, run);
    if (execution) {
      // executing here: cut now, its event left to the execution (its finishing transaction waits for this one's lock on
      // the run, so it reads the run as cancelled; should this transaction not commit, the execution finishes the run as
      // cancelled itself, with its event)
      this.cancelEventOwed.add(runId);
      execution.abort();
    }
    return { ...run, trace: await repo.steps(tx.db, tx.orgId, runId) };
  }

  /**
   * Cancels the runs of an organization being deleted, in its deletion's transaction (OrganizationsService.delete, before
   * the organization's row goes), as the person deleting it: each still running finished as a cancel finishes it, audited
   * (ai.run_cancelled, reason organization_deleted), with no agent.run.* event (the organization's subscribers hear
   * organization.deleted), and none owed: neither these nor runs cancelled earlier whose event their execution still owed
   * keep their mark, so the sweep of owed events (emitOwedCancelEvents) emits none either. The budget reservation of a
   * call any of them has in flight is released, settled at nothing as the lost-runs sweep settles one (no execution can:
   * none opens a transaction in a deleted organization; one let in before the deletion committed writes nothing there,
   * addCallStep), with no threshold event. Executions here are cut once the deletion commits (afterCommit): should it roll
   * back, they go on as the runs do. The erasure of its last member calls this too (on its privileged path, as that
   * person), for each organization it deletes. Answers the runs it cancelled.
   */
  async cancelRunsOfDeletedOrganization(tx: TenantTx): Promise<RunDto[]> {
    const now = this.now();
    const locked = await repo.lockRunsOfDeletedOrganization(tx.db, tx.orgId);
    const cancelled: RunDto[] = [];
    for (const { id } of locked.filter((r) => r.status === 'running')) {
      const run = await repo.finishRun(tx.db, tx.orgId, id, {
        status: 'cancelled', stopReason: 'cancelled', errorClass: 'cancelled', errorMessage: 'cancelled: its organization was deleted', output: null, finishedAt: now,
      });
      // running and locked: the update finds it
      if (run) cancelled.push(run);
    }
    await repo.clearCancelEventMarks(tx.db, tx.orgId, locked.map((r) => r.id));
    for (const { agentId, callId } of locked) if (callId) await repo.settle(tx.db, callId, new Decimal(0), 0, agentId, now);
    for (const run of cancelled) await this.auditFinished(tx, run, { reason: 'organization_deleted' });
    // cut once the deletion has committed: one that fails (rolled back) leaves the runs running, their executions too
    tx.db.afterCommit(() => {
      for (const run of cancelled) this.active.get(run.id)?.abort();
    });
    return cancelled;
  }
}

