import { AgentErrors } from './agents.errors.js';
import { RequiresScope } from '../../platform/auth/api-key-scopes.js';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Put, Query, Req, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse, ApiBody, ApiCreatedResponse, ApiHeader, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam,
  ApiTags, getSchemaPath, ApiExtraModels,
} from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_ROLES, type Principal } from '../../platform/auth/principal.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { ApiErrorCodes } from '../../platform/errors/catalog.js';
import { AppError } from '../../platform/errors/app-error.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { InFlightRequests } from '../../platform/http/graceful-shutdown.js';
import { IdParam } from '../../platform/http/id-param.js';
import { ApiErrors } from '../../platform/http/openapi.js';
import { ConsumesLimit, CurrentPrincipal, OrgPreflightRoute, OrgRoute, RequireRole, RequiresFeature, Tx, WritesRequireSubscription } from '../../platform/http/tenant.js';
import { AutomationService } from './automation.service.js';
import {
  AgentDto, BudgetDto, CreateAgentDto, CreateTriggerDto, TriggerDto, CreateBudgetDto, CreateRunDto, ModelDto, ProviderKeyDto, RunAcceptedDto, RunDto, RunListQuery, RunPage, RunQuery, SetProviderKeyDto, ToolDto,
  UpdateAgentDto, UpdateBudgetDto, UsageQuery, UsageReportDto,
} from './agents.dto.js';
import { AgentsService } from './agents.service.js';
import { ProviderKeysService } from './provider-keys.service.js';
import { RunsService, type RunSink } from './runs.service.js';
import { UUID } from '../../platform/http/uuid.js';


@ApiTags('agents')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/ai')
export class AiCatalogController {
  constructor(
    private readonly agents: AgentsService,
    private readonly keys: ProviderKeysService,
  ) {}

  @Get('models')
  @ApiOperation({ operationId: 'listAiModels', summary: 'The model catalog with dated prices per million tokens' })
  @ApiOkResponse({ type: [ModelDto] })
  @ApiErrorCodes('organization.not_found')
  models(@Tx() tx: TenantTx): Promise<ModelDto[]> {
    return this.agents.models(tx);
  }

  @Get('tools')
  @ApiOperation({ operationId: 'listAiTools', summary: 'The tools agents may be given, with their argument schemas' })
  @ApiOkResponse({ type: [ToolDto] })
  @ApiErrorCodes('organization.not_found')
  tools(): ToolDto[] {
    return this.agents.toolList();
  }

  @Get('usage')
  @RequiresScope('agents:run')
  @ApiOperation({ operationId: 'getAiUsage', summary: 'Usage per day, agent and model: runs, tokens by type, cost; and the knowledge base\'s embedding calls per day, purpose and model (owners, admins: every run and call; other members and API keys with agents:run: the runs they started, the calls made for them)' })
  @ApiOkResponse({ type: UsageReportDto })
  @ApiErrorCodes('ai.range')
  usage(@Tx() tx: TenantTx, @Query() q: UsageQuery): Promise<UsageReportDto> {
    return this.agents.usage(tx, q.from, q.to);
  }

  @Get('budgets')
  @ApiOperation({ operationId: 'listAiBudgets', summary: 'Budgets of the organization and its agents with this month\'s spent, reserved and left' })
  @ApiOkResponse({ type: [BudgetDto] })
  @ApiErrorCodes('organization.not_found')
  budgets(@Tx() tx: TenantTx): Promise<BudgetDto[]> {
    return this.agents.budgets(tx);
  }

  @Post('budgets')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'createAiBudget', summary: 'Create the organization\'s or an agent\'s monthly budget (owner, admin)' })
  @ApiCreatedResponse({ type: BudgetDto })
  @ApiErrorCodes('ai.budget_exists', 'agent.not_found')
  createBudget(@Tx() tx: TenantTx, @Body() dto: CreateBudgetDto): Promise<BudgetDto> {
    return this.agents.createBudget(tx, dto);
  }

  @Get('budgets/:budgetId')
  @ApiOperation({ operationId: 'getAiBudget', summary: 'One budget with this month\'s spent, reserved and left' })
  @ApiOkResponse({ type: BudgetDto })
  @ApiErrorCodes('organization.not_found', 'budget.not_found')
  budget(@Tx() tx: TenantTx, @IdParam('budgetId', 'budget') id: string): Promise<BudgetDto> {
    return this.agents.budget(tx, id);
  }

  @Patch('budgets/:budgetId')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'updateAiBudget', summary: 'Change a budget\'s limits or thresholds (owner, admin)' })
  @ApiOkResponse({ type: BudgetDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'budget.not_found', 'validation_failed')
  updateBudget(@Tx() tx: TenantTx, @IdParam('budgetId', 'budget') id: string, @Body() dto: UpdateBudgetDto): Promise<BudgetDto> {
    return this.agents.updateBudget(tx, id, dto);
  }

  @Delete('budgets/:budgetId')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'deleteAiBudget', summary: 'Delete a budget (owner, admin)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'budget.not_found')
  async deleteBudget(@Tx() tx: TenantTx, @IdParam('budgetId', 'budget') id: string): Promise<void> {
    await this.agents.removeBudget(tx, id);
  }

  @Get('provider-key')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'getAiProviderKey', summary: 'Whether the organization has its own provider key: its last four characters and endpoint (owner, admin)' })
  @ApiOkResponse({ type: ProviderKeyDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'provider_key.not_found')
  providerKey(@Tx() tx: TenantTx): Promise<ProviderKeyDto> {
    return this.keys.get(tx);
  }

  @Put('provider-key')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'setAiProviderKey', summary: 'Store the organization\'s own provider key, encrypted (owner, admin); it is never answered' })
  @ApiOkResponse({ type: ProviderKeyDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'secrets.not_configured', 'ai.base_url_invalid', 'ai.base_url_not_public')
  setProviderKey(@Tx() tx: TenantTx, @Body() dto: SetProviderKeyDto): Promise<ProviderKeyDto> {
    return this.keys.set(tx, dto);
  }

  @Delete('provider-key')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'deleteAiProviderKey', summary: 'Remove the organization\'s own key: runs use the platform\'s (owner, admin)' })
  @ApiNoContentResponse({ description: 'Removed' })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'provider_key.not_found')
  async deleteProviderKey(@Tx() tx: TenantTx): Promise<void> {
    await this.keys.remove(tx);
  }
}

@ApiTags('agents')
@OrgRoute()
@WritesRequireSubscription('omnizen')
@Controller('v1/orgs/:orgId/agents')
export class AgentsController {
  constructor(
    private readonly agents: AgentsService,
    private readonly runs: RunsService,
    private readonly automation: AutomationService,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'listAgents', summary: 'The organization\'s agents' })
  @ApiOkResponse({ type: [AgentDto] })
  @ApiErrorCodes('organization.not_found')
  list(@Tx() tx: TenantTx): Promise<AgentDto[]> {
    return this.agents.list(tx);
  }

  @Post()
  @RequireRole(...ADMIN_ROLES)
  @ConsumesLimit('omnizen', 'ai_agents')
  @ApiOperation({ operationId: 'createAgent', summary: 'Create an agent (owner, admin; counts against the plan\'s ai_agents)' })
  @ApiCreatedResponse({ type: AgentDto })
  @ApiErrorCodes('ai.unknown_model', 'ai.unknown_tool', 'ai.agent_name_taken')
  create(@Tx() tx: TenantTx, @Body() dto: CreateAgentDto): Promise<AgentDto> {
    return this.agents.create(tx, dto);
  }

  @Get(':agentId')
  @ApiOperation({ operationId: 'getAgent', summary: 'One agent' })
  @ApiOkResponse({ type: AgentDto })
  @ApiErrorCodes('organization.not_found', 'agent.not_found')
  get(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') id: string): Promise<AgentDto> {
    return this.agents.get(tx, id);
  }

  @Patch(':agentId')
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'updateAgent', summary: 'Change an agent: instructions, model, parameters, tools, status (owner, admin)' })
  @ApiOkResponse({ type: AgentDto })
  @ApiErrorCodes('ai.unknown_model', 'ai.unknown_tool', 'ai.agent_name_taken')
  update(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') id: string, @Body() dto: UpdateAgentDto): Promise<AgentDto> {
    return this.agents.update(tx, id, dto);
  }

  @Delete(':agentId')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({
    operationId: 'deleteAgent', summary: 'Delete an agent with its runs and budget (owner, admin)',
    description: 'Refused with 409 ai.agent_running while a run of the agent still executes (running, or cancelled with an LLM call in flight, whose step it still stores): cancel its runs and delete it once they end. An organization\'s deletion, by contrast, cancels its runs.',
  })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'agent.not_found', 'ai.agent_running')
  async remove(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') id: string): Promise<void> {
    await this.agents.remove(tx, id);
  }

  @Get(':agentId/triggers')
  @ApiOperation({ operationId: 'listAgentTriggers', summary: 'The agent\'s automation triggers' })
  @ApiOkResponse({ type: [TriggerDto] })
  @ApiErrorCodes('organization.not_found', 'agent.not_found')
  triggers(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') agentId: string): Promise<TriggerDto[]> {
    return this.automation.list(tx, agentId);
  }

  @Post(':agentId/triggers')
  @RequireRole(...ADMIN_ROLES)
  @RequiresFeature('omnizen', 'ai_automation')
  @ApiOperation({ operationId: 'createAgentTrigger', summary: 'Run the agent on a schedule (cron, UTC) or on a domain event, with your claims (owner, admin; professional plan and up)' })
  @ApiCreatedResponse({ type: TriggerDto })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.feature_not_in_plan', 'billing.subscription_inactive', 'agent.not_found', 'auth.user_required', 'validation_failed')
  createTrigger(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') agentId: string, @Body() dto: CreateTriggerDto): Promise<TriggerDto> {
    return this.automation.create(tx, agentId, dto);
  }

  @Delete(':agentId/triggers/:triggerId')
  @HttpCode(204)
  @RequireRole(...ADMIN_ROLES)
  @ApiOperation({ operationId: 'deleteAgentTrigger', summary: 'Delete an automation trigger (owner, admin)' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiErrorCodes('organization.not_found', 'forbidden.role', 'billing.subscription_inactive', 'trigger.not_found')
  async deleteTrigger(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') agentId: string, @IdParam('triggerId', 'trigger') id: string): Promise<void> {
    await this.automation.remove(tx, agentId, id);
  }

  @Get(':agentId/runs')
  @RequiresScope('agents:run')
  @ApiOperation({ operationId: 'listAgentRuns', summary: 'The agent\'s runs, newest first; filter by status and trigger (cursor pagination; owners and admins see every run; other members, viewers included, and API keys with agents:run, the runs they started)' })
  @ApiOkResponse({ type: RunPage })
  @ApiErrors(400)
  @ApiErrorCodes('organization.not_found', 'agent.not_found')
  listRuns(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') agentId: string, @Query() q: RunListQuery): Promise<RunPage> {
    return this.agents.listRuns(tx, agentId, q);
  }

  @Get(':agentId/runs/:runId')
  @RequiresScope('agents:run')
  @ApiOperation({
    operationId: 'getAgentRun',
    summary: 'One run with its trace: every LLM and tool step with tokens, cost, latency and errors (the person or API key that started it, owner, admin)',
    description: 'A run holds what its tools read with the claims of the person (or the scopes of the API key) that started it: any other member, and any other API key, gets 404 run.not_found.',
  })
  @ApiOkResponse({ type: RunDto })
  @ApiErrorCodes('organization.not_found', 'run.not_found')
  getRun(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') agentId: string, @IdParam('runId', 'run') runId: string): Promise<RunDto> {
    return this.agents.getRun(tx, agentId, runId);
  }

  @Post(':agentId/runs/:runId/cancel')
  @HttpCode(200)
  @RequiresScope('agents:run')
  @ApiOperation({ operationId: 'cancelAgentRun', summary: 'Cancel a running run (the person or API key that started it, owner, admin: another member gets 403, another API key 404 run.not_found); it stops at its next step' })
  @ApiOkResponse({ type: RunDto })
  @ApiErrorCodes('ai.run_finished', 'forbidden.role', 'run.not_found')
  cancel(@Tx() tx: TenantTx, @IdParam('agentId', 'agent') agentId: string, @IdParam('runId', 'run') runId: string): Promise<RunDto> {
    return this.runs.cancel(tx, agentId, runId);
  }
}

/**
 * Starting a run is not an @OrgRoute: a run spans provider calls that take seconds, and no transaction may stay
 * open across them. The preflight checks membership and the subscription before the body is validated; the run
 * is created in a transaction of its own (RunsService.start checks again) and every step commits on its own.
 */
@ApiTags('agents')
@OrgPreflightRoute()
@WritesRequireSubscription('omnizen')
@ApiExtraModels(RunDto)
@Controller('v1/orgs/:orgId/agents')
export class AgentRunsController {
  constructor(
    private readonly runs: RunsService,
    private readonly requests: InFlightRequests,
  ) {}

  @Post(':agentId/runs')
  @RequiresScope('agents:run')
  @ApiOperation({
    operationId: 'runAgent',
    summary: 'Run an agent (any member; tools read only what you may): synchronously, as server-sent events (Accept: text/event-stream), or as a job (?async=true → 202)',
    description: 'Server-sent events: `run`, then `token` (content deltas), `retry` ({ attempt }: a failed LLM call is made again, its answer streamed from the start: discard the `token` deltas received since the last event that is not a `token`), `tool_call`, `tool_result`, `step` (each LLM call made, once its step is stored: stepNo, kind, status — failed for a call that failed or whose answer was not used — errorClass, usage and cost; the steps\' costs add up to the run\'s), an `error` ({ code, message, details }) when the run fails other than by its LLM call or a tool: code ai.budget_exceeded when a budget refuses a call or the retry of a failed one, an app error\'s own code when one failed the run (e.g. organization.not_found: its starter was removed from the organization, or the organization deleted, mid-run), internal when it failed unexpectedly (e.g. a database error), and `result` (the run with its trace; missing only when the run could not be finished, after the `error`). A budget that cannot take the call\'s worst case answers 402 ai.budget_exceeded (synchronous runs) after recording the failed run, whose id is in the error\'s details.runId (and in the streamed `error` event\'s details). An answer may call at most 16 tools (MAX_TOOL_CALLS_PER_ANSWER): the calls past them are not run, the model is answered a tool error for each, and the trace records them in one failed tool_call step (name tool_calls_refused). A provider answer larger than maxOutputTokens allows (16 bytes of content and tool calls a token, each call counting 256 bytes more, at least 64 KiB), holding more than 64 tool calls, or whose response body passes what such an answer takes with its framing, is cut: the run fails, errorClass provider_error, not retried. A run gone before it could be answered (its agent or run deleted mid-run) answers 404 run.not_found. A run whose execution fails unexpectedly (e.g. a database error) is failed at once, errorClass internal, and answered as such.',
  })
  @ApiHeader({ name: 'Accept', required: false, description: 'text/event-stream to stream the run', example: 'application/json' })
  @ApiBody({ type: CreateRunDto })
  @ApiOkResponse({
    description: 'The finished run with its trace (status succeeded, failed or cancelled); or the event stream',
    content: {
      'application/json': { schema: { $ref: getSchemaPath(RunDto) } },
      'text/event-stream': { schema: { type: 'string', description: 'server-sent events', example: 'event: token\ndata: {"delta":"Cash"}\n\n' } },
    },
  })
  @ApiAcceptedResponse({ type: RunAcceptedDto, description: 'Started as a job (?async=true): GET the run for its outcome' })
  @ApiParam({ name: 'agentId', description: 'Agent id (UUID)', format: 'uuid' })
  @ApiErrorCodes('ai.agent_paused', 'ai.no_provider_key', 'ai.budget_exceeded', 'agent.not_found', 'run.not_found')
  async run(
    @Param('orgId') orgId: string, @Param('agentId') agentId: string, @Query() q: RunQuery, @Body() dto: CreateRunDto,
    @CurrentPrincipal() principal: Principal, @Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<RunDto | RunAcceptedDto | undefined> {
    if (!UUID.test(orgId)) throw PlatformErrors.notFound('organization', orgId);
    if (!UUID.test(agentId)) throw AgentErrors.notFound('agent', agentId);
    const meta = { requestId: String(req.id), ip: req.ip };
    const asJob = q.async === 'true';
    // the preflight (OrgPreflightRoute, @WritesRequireSubscription) checked membership and the subscription
    const started = await this.runs.start(principal, orgId, meta, agentId, dto, asJob ? 'async' : 'interactive', { asJob, subscriptionChecked: true });
    if (asJob) {
      reply.status(202);
      return { id: started.run.id, status: 'running' };
    }
    if (!String(req.headers.accept ?? '').includes('text/event-stream')) {
      reply.status(200);
      return this.runs.execute(started);
    }
    // server-sent events: written to the raw response as they come
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': String(req.id) });
    const sink: RunSink = { event: (name, data) => void raw.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`) };
    // a client that goes away does not cancel the run: it is recorded to its end. The server shutting down does (when it
    // stops accepting connections, requests.closing, as a notification stream ends): the run is cut, finished cancelled
    // and streamed so, and the stream ends, instead of holding the drain until its grace runs out and being cut with the
    // process, left running until the lost-runs sweep fails it (subscribed once the execution is under way: `closing`
    // emits at once to a subscriber that comes after it)
    const execution = this.runs.execute(started, sink);
    const shutdown = this.requests.closing.subscribe(() => this.runs.cutAtShutdown(started.run.id));
    try {
      await execution;
    } catch (err) {
      // a budget refusal's error event was streamed with its run (it carries it); any other error ends the stream with its own
      if (!(err instanceof AppError)) sink.event('error', { code: 'internal', message: 'the run failed unexpectedly' });
      else if (!('run' in err)) sink.event('error', { code: err.code, message: err.message, details: err.details });
    } finally {
      shutdown.unsubscribe();
      raw.end();
    }
    return undefined;
  }
}
