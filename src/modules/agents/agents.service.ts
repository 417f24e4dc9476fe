import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { Clock } from '../../platform/clock/clock.js';
import { AuditService } from '../audit/audit.service.js';
import { AgentErrors } from './agents.errors.js';
import type {
  AgentDto, BudgetDto, CreateAgentDto, CreateBudgetDto, ModelDto, RunDto, RunListQuery, RunPage, ToolDto, UpdateAgentDto, UpdateBudgetDto, UsageReportDto,
} from './agents.dto.js';
import { decodeKeyset, page } from '../../platform/http/pagination.js';
import { agentsRepository as repo } from './agents.repository.js';
import { ToolRegistry } from './tool-registry.js';

/** The first day of the UTC month of `ms`. */
export const monthOf = (ms: number) => {
  const d = new Date(ms);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
};

/** The verified API key of the request (begin_key_request checked it), which sees only the runs it started. */
const keyOf = (tx: TenantTx): string | undefined => (tx.principal.kind === 'apiKey' ? tx.principal.keyId : undefined);

/** Agents, the catalog, budgets and usage (runs: RunsService). */
@Injectable()
export class AgentsService {
  constructor(
    private readonly audit: AuditService,
    private readonly tools: ToolRegistry,
    private readonly clock: Clock,
  ) {}

  models(tx: TenantTx): Promise<ModelDto[]> {
    return repo.models(tx.db);
  }

  toolList(): ToolDto[] {
    return this.tools.list().map(({ name, description, parameters }) => ({ name, description, parameters }));
  }

  list(tx: TenantTx): Promise<AgentDto[]> {
    return repo.listAgents(tx.db, tx.orgId);
  }

  async get(tx: TenantTx, id: string): Promise<AgentDto> {
    const a = await repo.getAgent(tx.db, tx.orgId, id);
    if (!a) throw AgentErrors.notFound('agent', id);
    return a;
  }

  private async checkModelAndTools(tx: TenantTx, modelId: string | undefined, tools: string[] | undefined, maxOutputTokens?: number): Promise<void> {
    if (modelId !== undefined) {
      const m = await repo.chatModel(tx.db, modelId);
      if (!m) throw AgentErrors.error('ai.unknown_model', `model ${modelId} is not a chat model of the catalog (GET /ai/models)`);
      if (maxOutputTokens !== undefined && maxOutputTokens > m.maxOutputTokens) {
        throw AgentErrors.error('ai.unknown_model', `model ${modelId} answers at most ${m.maxOutputTokens} output tokens`);
      }
    }
    const unknown = (tools ?? []).filter((t) => !this.tools.get(t));
    if (unknown.length) throw AgentErrors.error('ai.unknown_tool', `unknown or not installed tool(s): ${unknown.join(', ')} (GET /ai/tools lists them)`, { tools: unknown });
  }

  async create(tx: TenantTx, dto: CreateAgentDto): Promise<AgentDto> {
    const maxOutputTokens = dto.maxOutputTokens ?? 1024;
    await this.checkModelAndTools(tx, dto.modelId, dto.tools, maxOutputTokens);
    const agent = await translateDatabaseError(repo.createAgent(tx.db, tx.orgId, tx.principal.kind === 'user' ? tx.principal.userId : null, {
      name: dto.name.trim(), type: dto.type, instructions: dto.instructions ?? '', modelId: dto.modelId, temperature: dto.temperature ?? 0.2,
      maxOutputTokens, maxSteps: dto.maxSteps ?? 8, tools: [...new Set(dto.tools ?? [])], knowledgeCollectionIds: [...new Set(dto.knowledgeCollectionIds ?? [])],
      status: dto.status ?? 'active', workspaceId: dto.workspaceId ?? null,
    }), {
      '23505': () => AgentErrors.error('ai.agent_name_taken', `an agent named "${dto.name.trim()}" already exists`),
      '23503': () => PlatformErrors.notFound('workspace', dto.workspaceId ?? undefined),
    });
    await this.audit.record(tx, { action: 'ai.agent_created', entityType: 'ai_agent', entityId: agent.id, after: agent });
    return agent;
  }

  async update(tx: TenantTx, id: string, dto: UpdateAgentDto): Promise<AgentDto> {
    const before = await this.get(tx, id);
    await this.checkModelAndTools(tx, dto.modelId ?? before.modelId, dto.tools, dto.maxOutputTokens ?? before.maxOutputTokens);
    const after = await translateDatabaseError(repo.updateAgent(tx.db, tx.orgId, id, {
      ...dto, ...(dto.name !== undefined ? { name: dto.name.trim() } : {}), ...(dto.tools ? { tools: [...new Set(dto.tools)] } : {}),
    }), { '23505': () => AgentErrors.error('ai.agent_name_taken', `an agent named "${dto.name?.trim()}" already exists`) });
    if (!after) throw AgentErrors.notFound('agent', id); // deleted by a concurrent request since it was read
    await this.audit.record(tx, { action: 'ai.agent_updated', entityType: 'ai_agent', entityId: id, before, after });
    return after;
  }

  /**
   * Deletes the agent with its runs and budget (its history stays in the audit log). Refused (409 ai.agent_running) while
   * a run of it still executes: unlike an organization's deletion (which cancels its runs: their spend goes with its
   * budgets), the organization's budget outlives the agent, and a run deleted mid-call could neither store the call the
   * provider bills nor be answered (its execution finds it gone).
   */
  async remove(tx: TenantTx, id: string): Promise<void> {
    const before = await this.get(tx, id);
    const inFlight = await repo.lockAgentRunsInFlight(tx.db, tx.orgId, id, new Date(this.clock.now()));
    if (inFlight > 0) {
      throw AgentErrors.error('ai.agent_running', `agent ${before.name} has ${inFlight} run(s) still executing: cancel them (POST .../runs/{runId}/cancel) and delete it once they end`, { runs: inFlight });
    }
    if (!(await repo.deleteAgent(tx.db, tx.orgId, id))) throw AgentErrors.notFound('agent', id); // deleted by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'ai.agent_deleted', entityType: 'ai_agent', entityId: id, before });
  }

  // ---------------------------------------------------------------- runs (reads)
  // A run holds what its tools read with its starter's claims: the database shows a run and its steps only to the person
  // who started it, owners, admins and API keys (runs_read, run_steps_read); to anyone else it does not exist (404).
  async listRuns(tx: TenantTx, agentId: string, q: RunListQuery): Promise<RunPage> {
    await this.get(tx, agentId);
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { s: 'timestamp', i: 'uuid' });
    const rows = await repo.listRuns(tx.db, tx.orgId, agentId, { status: q.status, trigger: q.trigger, after, limit: limit + 1, apiKeyId: keyOf(tx) });
    const p = page(rows, limit, (r) => r.key);
    return { items: p.items.map((r) => r.run), nextCursor: p.nextCursor };
  }

  async getRun(tx: TenantTx, agentId: string, runId: string): Promise<RunDto> {
    const run = await repo.getRun(tx.db, tx.orgId, agentId, runId);
    if (!run) throw AgentErrors.notFound('run', runId);
    return { ...run, trace: await repo.steps(tx.db, tx.orgId, runId) };
  }

  // ---------------------------------------------------------------- budgets
  budgets(tx: TenantTx): Promise<BudgetDto[]> {
    return repo.budgets(tx.db, tx.orgId, monthOf(this.clock.now()));
  }

  async budget(tx: TenantTx, id: string): Promise<BudgetDto> {
    const [b] = await repo.budgets(tx.db, tx.orgId, monthOf(this.clock.now()), id);
    if (!b) throw AgentErrors.notFound('budget', id);
    return b;
  }

  async createBudget(tx: TenantTx, dto: CreateBudgetDto): Promise<BudgetDto> {
    if (dto.costLimit === undefined && dto.tokenLimit === undefined) throw PlatformErrors.error('validation_failed', 'a budget needs costLimit and/or tokenLimit', [{ field: 'costLimit', problems: ['costLimit or tokenLimit is required'] }]);
    if (dto.agentId) await this.get(tx, dto.agentId);
    const id = await translateDatabaseError(repo.createBudget(tx.db, tx.orgId, {
      agentId: dto.agentId ?? null, costLimit: dto.costLimit ?? null, tokenLimit: dto.tokenLimit ?? null, thresholds: [...new Set(dto.thresholds ?? [50, 80, 100])].sort((a, b) => a - b),
    }), { '23505': () => AgentErrors.error('ai.budget_exists', dto.agentId ? `agent ${dto.agentId} already has a budget` : 'the organization already has a budget') });
    const b = await this.budget(tx, id);
    await this.audit.record(tx, { action: 'ai.budget_created', entityType: 'ai_budget', entityId: id, after: b });
    return b;
  }

  async updateBudget(tx: TenantTx, id: string, dto: UpdateBudgetDto): Promise<BudgetDto> {
    const before = await this.budget(tx, id);
    const costLimit = dto.costLimit === undefined ? before.costLimit : dto.costLimit;
    const tokenLimit = dto.tokenLimit === undefined ? before.tokenLimit : dto.tokenLimit;
    if (costLimit === null && tokenLimit === null) throw PlatformErrors.error('validation_failed', 'a budget needs costLimit and/or tokenLimit', [{ field: 'costLimit', problems: ['costLimit or tokenLimit is required'] }]);
    await repo.updateBudget(tx.db, tx.orgId, id, { ...dto, ...(dto.thresholds ? { thresholds: [...new Set(dto.thresholds)].sort((a, b) => a - b) } : {}) });
    const after = await this.budget(tx, id);
    await this.audit.record(tx, { action: 'ai.budget_updated', entityType: 'ai_budget', entityId: id, before, after });
    return after;
  }

  async removeBudget(tx: TenantTx, id: string): Promise<void> {
    const before = await this.budget(tx, id);
    if (!(await repo.deleteBudget(tx.db, tx.orgId, id))) throw AgentErrors.notFound('budget', id); // deleted by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'ai.budget_deleted', entityType: 'ai_budget', entityId: id, before });
  }

  // ---------------------------------------------------------------- usage
  async usage(tx: TenantTx, from?: string, to?: string): Promise<UsageReportDto> {
    const today = new Date(this.clock.now()).toISOString().slice(0, 10);
    const end = to ?? today;
    // 30 days before `to` (today without it)
    const start = from ?? new Date(Date.parse(`${end}T00:00:00Z`) - 30 * 86_400_000).toISOString().slice(0, 10);
    if (start > end) throw AgentErrors.error('ai.range', 'from is after to');
    const [rows, embeddings] = await Promise.all([
      repo.usage(tx.db, tx.orgId, start, end, keyOf(tx)),
      repo.embeddingUsage(tx.db, tx.orgId, start, end, keyOf(tx)),
    ]);
    const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((s, r) => s + f(r), 0);
    let cost = 0n;
    for (const r of [...rows, ...embeddings]) cost += BigInt(r.cost.replace('.', ''));
    const costText = (() => {
      const s = cost.toString().padStart(9, '0');
      return `${s.slice(0, -8)}.${s.slice(-8)}`;
    })();
    return {
      from: start, to: end, runs: sum((r) => r.runs), cost: costText, rows, embeddings,
      usage: {
        inputTokens: sum((r) => r.usage.inputTokens) + embeddings.reduce((s, r) => s + r.inputTokens, 0), outputTokens: sum((r) => r.usage.outputTokens),
        cachedInputTokens: sum((r) => r.usage.cachedInputTokens), cacheWriteTokens: sum((r) => r.usage.cacheWriteTokens),
      },
    };
  }
}
