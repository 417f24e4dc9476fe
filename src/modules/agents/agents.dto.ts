import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import {
  ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, IsNumber, IsOptional, IsString, IsUUID, Length, Matches, Max, MaxLength, Min, ValidateBy,
} from 'class-validator';
import { CalendarDate } from '../../platform/http/calendar-date.js';
import { NestedList } from '../../platform/http/nested-list.js';
import { PageQuery } from '../../platform/http/pagination.js';
import { PageInfo } from '../../platform/http/openapi.js';

export const AGENT_TYPES = ['assistant', 'accountant', 'analyst', 'custom'] as const;
export const AGENT_STATUSES = ['active', 'paused'] as const;
export const RUN_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export const RUN_TRIGGERS = ['interactive', 'async', 'schedule', 'event'] as const;
/** The error classes of a failed call or tool, a step's and its run's. */
const CALL_ERROR_CLASSES = ['provider_rate_limited', 'provider_error', 'timeout', 'tool_error', 'budget_exceeded', 'cancelled'] as const;
/**
 * A failed step's error classes; internal: an LLM call answered (and billed) whose step could not be stored (a database
 * error), stored by its failed execution with what it cost, its answer not used (RunsService.execute).
 */
export const ERROR_CLASSES = [...CALL_ERROR_CLASSES, 'internal'] as const;
/**
 * A failed or cancelled run's: a step's, worker_lost (the instance executing it stopped, or no instance took a job's run
 * within a day: RunsService.failLostRuns), or internal (an interactive run's execution failed unexpectedly, e.g. a database
 * error: RunsService.execute).
 */
export const RUN_ERROR_CLASSES = [...CALL_ERROR_CLASSES, 'worker_lost', 'internal'] as const;
export const STOP_REASONS = ['answer', 'max_steps', 'error', 'cancelled'] as const;
export type ErrorClass = (typeof RUN_ERROR_CLASSES)[number];

const AGENT_ID = '5a1c2e3f-9b8d-4c7e-a6f5-1d2e3f4a5b6c';
const RUN_ID = '0b8f4f7e-4c1a-4d3e-9a55-3f1d2c6b7a10';
const USER_ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
/** A budget's cost limit: up to 10 digits and 4 decimals (numeric(14, 4)), above 0 (a digit other than 0 somewhere) as ai.budgets' CHECK wants it. */
const POSITIVE_DECIMAL = /^(?=[\d.]*[1-9])\d{1,10}(\.\d{1,4})?$/;
const COST_LIMIT_MESSAGE = 'costLimit must be a decimal string greater than 0 with at most 4 decimals, like "100.00"';
/** A token limit is a bigint; a JSON number is exact up to 2^53 - 1 (a larger one would be neither stored nor read back as sent). */
const MAX_TOKEN_LIMIT = Number.MAX_SAFE_INTEGER;

// ---------------------------------------------------------------- models
@ApiSchema({ description: 'Prices of a model in USD per million tokens, by usage type, from a date on' })
export class ModelPriceDto {
  @ApiProperty({ description: 'When these prices take effect (ISO 8601)', example: '2024-07-18T00:00:00.000Z' }) effectiveFrom: string;
  @ApiProperty({ description: 'USD per million uncached input tokens (decimal string)', example: '0.150000' }) input: string;
  @ApiProperty({ description: 'USD per million output tokens', example: '0.600000' }) output: string;
  @ApiProperty({ description: 'USD per million cached input tokens read', example: '0.075000' }) cachedInput: string;
  @ApiProperty({ description: 'USD per million tokens written to the prompt cache', example: '0.000000' }) cacheWrite: string;
  @ApiProperty({ description: 'Where and when the price was read', example: 'openai.com/api/pricing, read 2026-12-02' }) source: string;
}

@ApiSchema({ description: 'A model of the catalog with its price history' })
export class ModelDto {
  @ApiProperty({ description: 'Model id as the provider names it', example: 'gpt-4o-mini' }) id: string;
  @ApiProperty({ description: 'Vendor of the model', example: 'openai' }) provider: string;
  @ApiProperty({ description: 'Display name', example: 'GPT-4o mini' }) displayName: string;
  @ApiProperty({ enum: ['chat', 'embedding'], description: 'What the model does', example: 'chat' }) kind: string;
  @ApiProperty({ description: 'Context window in tokens', example: 128000 }) contextWindow: number;
  @ApiProperty({ description: 'Most output tokens per call', example: 16384 }) maxOutputTokens: number;
  @ApiProperty({ description: 'A reasoning model (o-series, gpt-5 family): a run asks it for maxOutputTokens as max_completion_tokens and leaves out the agent\'s temperature (it takes only its default)', example: false })
  reasoning: boolean;
  @ApiProperty({ type: [ModelPriceDto], description: 'Prices, newest first', example: [{ effectiveFrom: '2024-07-18T00:00:00.000Z', input: '0.150000', output: '0.600000', cachedInput: '0.075000', cacheWrite: '0.000000', source: 'openai.com/api/pricing, read 2026-12-02' }] })
  prices: ModelPriceDto[];
}

@ApiSchema({ description: 'A tool an agent may be allowed to use' })
export class ToolDto {
  @ApiProperty({ description: 'Tool name', example: 'query_semantic' }) name: string;
  @ApiProperty({ description: 'What the tool does (the model reads this)', example: 'Run one read-only SELECT over the semantic views' }) description: string;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'JSON Schema of its arguments', example: { type: 'object', properties: { sql: { type: 'string' } }, required: ['sql'] } })
  parameters: Record<string, unknown>;
}

// ---------------------------------------------------------------- agents
@ApiSchema({ description: 'A new agent' })
export class CreateAgentDto {
  @ApiProperty({ description: 'Name, unique in the organization', example: 'Month-end reviewer', minLength: 1, maxLength: 200 }) @IsString() @Length(1, 200) name: string;
  @ApiProperty({ enum: AGENT_TYPES, description: 'Kind of agent', example: 'accountant' }) @IsIn(AGENT_TYPES) type: (typeof AGENT_TYPES)[number];
  @ApiPropertyOptional({ description: 'System prompt', example: 'You review the books and answer with figures from the semantic views.', maxLength: 20000 })
  @IsOptional() @IsString() @MaxLength(20_000) instructions?: string;
  @ApiProperty({ description: 'Chat model of the catalog (GET /ai/models)', example: 'gpt-4o-mini' }) @IsString() @Length(1, 100) modelId: string;
  @ApiPropertyOptional({ description: 'Sampling temperature, 0 to 2', example: 0.2, minimum: 0, maximum: 2 }) @IsOptional() @IsNumber() @Min(0) @Max(2) temperature?: number;
  @ApiPropertyOptional({ description: 'Most output tokens per LLM call (also what a budget reserves)', example: 1024, minimum: 1, maximum: 100000 })
  @IsOptional() @IsInt() @Min(1) @Max(100_000) maxOutputTokens?: number;
  @ApiPropertyOptional({ description: 'Most LLM calls per run (the tool loop stops there); each answer may call at most 16 tools, the calls past them are answered a tool error, not run', example: 8, minimum: 1, maximum: 50 }) @IsOptional() @IsInt() @Min(1) @Max(50) maxSteps?: number;
  @ApiPropertyOptional({ type: [String], description: 'Tools of the registry it may call (GET /ai/tools)', example: ['query_semantic', 'get_trial_balance'] })
  @IsOptional() @IsArray() @ArrayMaxSize(20) @IsString({ each: true }) tools?: string[];
  @ApiPropertyOptional({ type: [String], description: 'Knowledge collections it may search (the knowledge base, when installed)', example: [] })
  @IsOptional() @IsArray() @ArrayMaxSize(50) @IsUUID('all', { each: true }) knowledgeCollectionIds?: string[];
  @ApiPropertyOptional({ enum: AGENT_STATUSES, description: 'paused agents do not run', example: 'active' }) @IsOptional() @IsIn(AGENT_STATUSES) status?: (typeof AGENT_STATUSES)[number];
  @ApiPropertyOptional({ type: String, nullable: true, format: 'uuid', description: 'Workspace the agent belongs to', example: null })
  @IsOptional() @IsUUID() workspaceId?: string | null;
}

@ApiSchema({ description: 'Changes to an agent; fields left out keep their value' })
export class UpdateAgentDto {
  @ApiPropertyOptional({ description: 'Name, unique in the organization', example: 'Month-end reviewer', minLength: 1, maxLength: 200 }) @IsOptional() @IsString() @Length(1, 200) name?: string;
  @ApiPropertyOptional({ description: 'System prompt', example: 'Answer briefly.', maxLength: 20000 }) @IsOptional() @IsString() @MaxLength(20_000) instructions?: string;
  @ApiPropertyOptional({ description: 'Chat model of the catalog', example: 'gpt-4o-mini' }) @IsOptional() @IsString() @Length(1, 100) modelId?: string;
  @ApiPropertyOptional({ description: 'Sampling temperature, 0 to 2', example: 0.5, minimum: 0, maximum: 2 }) @IsOptional() @IsNumber() @Min(0) @Max(2) temperature?: number;
  @ApiPropertyOptional({ description: 'Most output tokens per LLM call', example: 2048, minimum: 1, maximum: 100000 }) @IsOptional() @IsInt() @Min(1) @Max(100_000) maxOutputTokens?: number;
  @ApiPropertyOptional({ description: 'Most LLM calls per run (each answer may call at most 16 tools)', example: 6, minimum: 1, maximum: 50 }) @IsOptional() @IsInt() @Min(1) @Max(50) maxSteps?: number;
  @ApiPropertyOptional({ type: [String], description: 'Tools it may call', example: ['query_semantic'] }) @IsOptional() @IsArray() @ArrayMaxSize(20) @IsString({ each: true }) tools?: string[];
  @ApiPropertyOptional({ type: [String], description: 'Knowledge collections it may search', example: [] }) @IsOptional() @IsArray() @ArrayMaxSize(50) @IsUUID('all', { each: true }) knowledgeCollectionIds?: string[];
  @ApiPropertyOptional({ enum: AGENT_STATUSES, description: 'paused agents do not run', example: 'paused' }) @IsOptional() @IsIn(AGENT_STATUSES) status?: (typeof AGENT_STATUSES)[number];
}

@ApiSchema({ description: 'An AI agent of the organization' })
export class AgentDto {
  @ApiProperty({ format: 'uuid', description: 'Agent id', example: AGENT_ID }) id: string;
  @ApiProperty({ description: 'Name', example: 'Month-end reviewer' }) name: string;
  @ApiProperty({ enum: AGENT_TYPES, description: 'Kind of agent', example: 'accountant' }) type: string;
  @ApiProperty({ description: 'System prompt', example: 'You review the books.' }) instructions: string;
  @ApiProperty({ description: 'Chat model', example: 'gpt-4o-mini' }) modelId: string;
  @ApiProperty({ description: 'Sampling temperature', example: 0.2 }) temperature: number;
  @ApiProperty({ description: 'Most output tokens per LLM call', example: 1024 }) maxOutputTokens: number;
  @ApiProperty({ description: 'Most LLM calls per run (each answer may call at most 16 tools)', example: 8 }) maxSteps: number;
  @ApiProperty({ type: [String], description: 'Tools it may call', example: ['query_semantic'] }) tools: string[];
  @ApiProperty({ type: [String], description: 'Knowledge collections it may search', example: [] }) knowledgeCollectionIds: string[];
  @ApiProperty({ enum: AGENT_STATUSES, description: 'active or paused', example: 'active' }) status: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Workspace, if any', example: null }) workspaceId: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Who created it', example: USER_ID }) createdBy: string | null;
  @ApiProperty({ description: 'Created (ISO 8601)', example: '2026-12-02T09:00:00.000Z' }) createdAt: string;
  @ApiProperty({ description: 'Last changed (ISO 8601)', example: '2026-12-02T09:00:00.000Z' }) updatedAt: string;
}

// ---------------------------------------------------------------- runs
@ApiSchema({ description: 'One input message of a run' })
export class RunMessageDto {
  @ApiProperty({ enum: ['user', 'assistant'], description: 'Who said it (the agent\'s instructions are the system prompt)', example: 'user' })
  @IsIn(['user', 'assistant']) role: 'user' | 'assistant';
  @ApiProperty({ description: 'The text', example: 'What is our cash balance?', minLength: 1, maxLength: 100000 }) @IsString() @Length(1, 100_000) content: string;
}

/**
 * Characters of a run's messages together at most. Every message is tokenized on the request's thread (the budget
 * reserves the call's worst case before it is made), so the input is bounded as a whole, not only per message: as
 * much as the longest single message, about 25,000 tokens of English and 100,000 of CJK text, within the context
 * window of the models offered, and counted in well under a second.
 */
export const RUN_INPUT_MAX_CHARS = 100_000;

const TotalContentAtMost = (max: number) => ValidateBy({
  name: 'totalContentAtMost',
  constraints: [max],
  validator: {
    validate: (v: unknown) => !Array.isArray(v) || v.reduce((n: number, m: any) => n + (typeof m?.content === 'string' ? m.content.length : 0), 0) <= max,
    defaultMessage: () => `messages must hold at most ${max} characters in all`,
  },
});

@ApiSchema({ description: 'The messages a run starts from' })
export class CreateRunDto {
  @ApiProperty({
    type: [RunMessageDto], example: [{ role: 'user', content: 'What is our cash balance?' }],
    description: `Conversation so far, the last one the user's; at most ${RUN_INPUT_MAX_CHARS} characters of content in all`,
  })
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(100) @NestedList(() => RunMessageDto, 'a message') @TotalContentAtMost(RUN_INPUT_MAX_CHARS) messages: RunMessageDto[];
}

export class RunQuery {
  @ApiPropertyOptional({ enum: ['true', 'false'], description: 'true: answer 202 at once and run it as a job', example: 'false' })
  @IsOptional() @IsIn(['true', 'false']) async?: 'true' | 'false';
}

@ApiSchema({ description: 'Tokens by usage type' })
export class TokenUsageDto {
  @ApiProperty({ description: 'Uncached input tokens', example: 1200 }) inputTokens: number;
  @ApiProperty({ description: 'Output tokens', example: 180 }) outputTokens: number;
  @ApiProperty({ description: 'Cached input tokens read', example: 0 }) cachedInputTokens: number;
  @ApiProperty({ description: 'Tokens written to the prompt cache', example: 0 }) cacheWriteTokens: number;
}

const USAGE_EXAMPLE = { inputTokens: 1200, outputTokens: 180, cachedInputTokens: 0, cacheWriteTokens: 0 };

@ApiSchema({ description: 'One step of a run: an LLM call, a tool call or a retrieval' })
export class RunStepDto {
  @ApiProperty({ description: 'Position in the run, from 1', example: 1 }) stepNo: number;
  @ApiProperty({ enum: ['llm_call', 'tool_call', 'retrieval'], description: 'Kind of step', example: 'llm_call' }) kind: string;
  @ApiProperty({ description: 'Model id of an LLM call, tool name of a tool call', example: 'gpt-4o-mini' }) name: string;
  @ApiProperty({ enum: ['succeeded', 'failed'], description: 'Outcome', example: 'succeeded' }) status: string;
  @ApiProperty({ enum: [...ERROR_CLASSES, null], type: String, nullable: true, description: 'Error class of a failed step (internal: an LLM call answered and billed whose step could not be stored when it ended, stored with its cost once its execution failed; its answer was not used)', example: null }) errorClass: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'What went wrong', example: null }) errorMessage: string | null;
  @ApiProperty({ description: 'Start (ISO 8601)', example: '2026-12-02T09:00:00.000Z' }) startedAt: string;
  @ApiProperty({ description: 'End (ISO 8601)', example: '2026-12-02T09:00:01.200Z' }) endedAt: string;
  @ApiProperty({ description: 'Latency in ms', example: 1200 }) latencyMs: number;
  @ApiProperty({ type: Number, nullable: true, description: 'Streamed LLM calls: ms to the first token', example: null }) timeToFirstTokenMs: number | null;
  @ApiProperty({ description: 'Whether the call was streamed', example: false }) streamed: boolean;
  @ApiProperty({ description: 'Attempts made (retries on 429/5xx)', example: 1 }) attempts: number;
  @ApiProperty({ type: TokenUsageDto, description: 'Tokens as the provider reported them', example: USAGE_EXAMPLE }) usage: TokenUsageDto;
  @ApiProperty({ description: 'true when the provider reported no usage and the tokens were counted with a tokenizer', example: false }) tokensCounted: boolean;
  @ApiProperty({ description: 'Cost in USD at the prices in effect when the step ran (decimal string)', example: '0.00028800' }) cost: string;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, description: 'The prices used (USD per million tokens)', example: { input: '0.150000', output: '0.600000', cachedInput: '0.075000', cacheWrite: '0.000000' } })
  prices: Record<string, unknown> | null;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'What happened: the model\'s tool calls, a tool\'s arguments and result, the answer', example: { toolCalls: [{ name: 'query_semantic' }] } })
  detail: Record<string, unknown>;
}

@ApiSchema({ description: 'An agent run: its outcome, usage and cost, and (on one run) its trace' })
export class RunDto {
  @ApiProperty({ format: 'uuid', description: 'Run id', example: RUN_ID }) id: string;
  @ApiProperty({ format: 'uuid', description: 'Agent', example: AGENT_ID }) agentId: string;
  @ApiProperty({ description: 'Model used', example: 'gpt-4o-mini' }) modelId: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Whose claims it ran with', example: USER_ID }) startedBy: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The API key that started it (its scopes were the run\'s); null when a person, a trigger or a service started it', example: null }) apiKeyId: string | null;
  @ApiProperty({ enum: RUN_TRIGGERS, description: 'How it started', example: 'interactive' }) trigger: string;
  @ApiProperty({ enum: RUN_STATUSES, description: 'running, succeeded, failed or cancelled', example: 'succeeded' }) status: string;
  @ApiProperty({ type: String, nullable: true, description: 'The final answer', example: 'Cash at bank is EUR 1,500.00.' }) output: string | null;
  @ApiProperty({ enum: [...STOP_REASONS, null], type: String, nullable: true, description: 'Why it stopped', example: 'answer' }) stopReason: string | null;
  @ApiProperty({ enum: [...RUN_ERROR_CLASSES, null], type: String, nullable: true, description: 'Error class of a failed or cancelled run (worker_lost: the instance executing it stopped before finishing it, or an ?async=true or triggered run\'s job did not start it within a day; internal: the run\'s execution failed unexpectedly, or its starter could no longer run it, removed from the organization, their session ended or their API key revoked, mid-run or before its job started it: errorMessage names the refusal)', example: null }) errorClass: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'What went wrong', example: null }) errorMessage: string | null;
  @ApiProperty({ type: TokenUsageDto, description: 'Tokens of all its LLM calls', example: USAGE_EXAMPLE }) usage: TokenUsageDto;
  @ApiProperty({ description: 'Cost in USD (decimal string)', example: '0.00028800' }) cost: string;
  @ApiProperty({ description: 'Steps recorded', example: 3 }) steps: number;
  @ApiProperty({ description: 'Start (ISO 8601)', example: '2026-12-02T09:00:00.000Z' }) startedAt: string;
  @ApiProperty({ type: String, nullable: true, description: 'End (ISO 8601); null while running', example: '2026-12-02T09:00:02.000Z' }) finishedAt: string | null;
  @ApiProperty({ type: Number, nullable: true, description: 'Run latency in ms', example: 2000 }) latencyMs: number | null;
  @ApiPropertyOptional({ type: [RunStepDto], description: 'The trace (on a single run)', example: [] }) trace?: RunStepDto[];
}

export class RunListQuery extends PageQuery {
  @ApiPropertyOptional({ enum: RUN_STATUSES, description: 'Only runs in this status', example: 'failed' }) @IsOptional() @IsIn(RUN_STATUSES) status?: string;
  @ApiPropertyOptional({ enum: RUN_TRIGGERS, description: 'Only runs started this way', example: 'schedule' }) @IsOptional() @IsIn(RUN_TRIGGERS) trigger?: string;
}

@ApiSchema({ description: 'A page of an agent\'s runs, newest first (without their traces: GET a run for its trace)' })
export class RunPage extends PageInfo {
  @ApiProperty({ type: [RunDto], description: 'Runs on this page, newest first' }) items: RunDto[];
}

@ApiSchema({ description: 'A run started as a job' })
export class RunAcceptedDto {
  @ApiProperty({ format: 'uuid', description: 'Run id: GET it for the outcome', example: RUN_ID }) id: string;
  @ApiProperty({ enum: ['running'], description: 'Always running at this point', example: 'running' }) status: string;
}

// ---------------------------------------------------------------- budgets and usage
@ApiSchema({ description: 'A monthly budget (UTC calendar month) of the organization or of one agent' })
export class CreateBudgetDto {
  @ApiPropertyOptional({ type: String, nullable: true, format: 'uuid', description: 'The agent; absent or null: the organization\'s budget', example: null })
  @IsOptional() @IsUUID() agentId?: string | null;
  @ApiPropertyOptional({ description: 'Monthly cost limit in USD (decimal string, greater than 0)', example: '100.00' }) @IsOptional() @Matches(POSITIVE_DECIMAL, { message: COST_LIMIT_MESSAGE }) costLimit?: string;
  @ApiPropertyOptional({ description: 'Monthly token limit (all usage types)', example: 5000000, minimum: 1, maximum: MAX_TOKEN_LIMIT })
  @IsOptional() @IsInt() @Min(1) @Max(MAX_TOKEN_LIMIT) tokenLimit?: number;
  @ApiPropertyOptional({ type: [Number], description: 'Percent thresholds that emit ai.budget.threshold_reached', example: [50, 80, 100] })
  @IsOptional() @IsArray() @ArrayMaxSize(10) @IsIn([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 100], { each: true }) thresholds?: number[];
}

@ApiSchema({ description: 'Changes to a budget' })
export class UpdateBudgetDto {
  @ApiPropertyOptional({ type: String, nullable: true, description: 'Monthly cost limit in USD (greater than 0); null removes it', example: '150.00' })
  @IsOptional() @Matches(POSITIVE_DECIMAL, { message: COST_LIMIT_MESSAGE }) costLimit?: string | null;
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Monthly token limit; null removes it', example: 8000000, minimum: 1, maximum: MAX_TOKEN_LIMIT })
  @IsOptional() @IsInt() @Min(1) @Max(MAX_TOKEN_LIMIT) tokenLimit?: number | null;
  @ApiPropertyOptional({ type: [Number], description: 'Percent thresholds', example: [80, 100] })
  @IsOptional() @IsArray() @ArrayMaxSize(10) @IsIn([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 100], { each: true }) thresholds?: number[];
}

@ApiSchema({ description: 'A budget with this month\'s spent, reserved and left' })
export class BudgetDto {
  @ApiProperty({ format: 'uuid', description: 'Budget id', example: '3d2c1b0a-9f8e-4d7c-b6a5-4f3e2d1c0b9a' }) id: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'The agent, or null for the organization', example: null }) agentId: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Monthly cost limit in USD', example: '100.0000' }) costLimit: string | null;
  @ApiProperty({ type: Number, nullable: true, description: 'Monthly token limit', example: null }) tokenLimit: number | null;
  @ApiProperty({ type: [Number], description: 'Percent thresholds', example: [50, 80, 100] }) thresholds: number[];
  @ApiProperty({ description: 'Current month (YYYY-MM, UTC)', example: '2026-12' }) period: string;
  @ApiProperty({ description: 'Spent this month in USD', example: '12.50000000' }) spentCost: string;
  @ApiProperty({ description: 'Tokens spent this month', example: 250000 }) spentTokens: number;
  @ApiProperty({ description: 'Reserved by calls in flight, USD', example: '0.00000000' }) reservedCost: string;
  @ApiProperty({ description: 'Reserved by calls in flight, tokens', example: 0 }) reservedTokens: number;
  @ApiProperty({ type: String, nullable: true, description: 'USD left (limit - spent - reserved); null without a cost limit', example: '87.50000000' }) costLeft: string | null;
  @ApiProperty({ type: Number, nullable: true, description: 'Tokens left; null without a token limit', example: null }) tokensLeft: number | null;
  @ApiProperty({ type: [Number], description: 'Thresholds reached this month', example: [] }) thresholdsReached: number[];
}

export class UsageQuery {
  @ApiPropertyOptional({ description: 'First day (YYYY-MM-DD, UTC); default: 30 days before `to` (before today without it)', example: '2026-12-01' })
  @IsOptional() @CalendarDate('from') from?: string;
  @ApiPropertyOptional({ description: 'Last day (YYYY-MM-DD, UTC); default: today', example: '2026-12-31' })
  @IsOptional() @CalendarDate('to') to?: string;
}

@ApiSchema({ description: 'Usage of one agent and model on one day' })
export class UsageRowDto {
  @ApiProperty({ description: 'UTC day', example: '2026-12-02' }) day: string;
  @ApiProperty({ format: 'uuid', description: 'Agent', example: AGENT_ID }) agentId: string;
  @ApiProperty({ description: 'Model', example: 'gpt-4o-mini' }) modelId: string;
  @ApiProperty({ description: 'Runs started', example: 12 }) runs: number;
  @ApiProperty({ type: TokenUsageDto, description: 'Tokens by type', example: USAGE_EXAMPLE }) usage: TokenUsageDto;
  @ApiProperty({ description: 'Cost in USD', example: '0.01234000' }) cost: string;
}

@ApiSchema({ description: 'The knowledge base\'s embedding calls of one purpose and model on one day' })
export class EmbeddingUsageRowDto {
  @ApiProperty({ description: 'UTC day', example: '2026-12-02' }) day: string;
  @ApiProperty({ enum: ['knowledge_ingestion', 'knowledge_search'], description: 'knowledge_ingestion: a document version embedded (its upload, a re-index); knowledge_search: a search query embedded', example: 'knowledge_ingestion' })
  purpose: string;
  @ApiProperty({ description: 'Embedding model', example: 'text-embedding-3-small' }) modelId: string;
  @ApiProperty({ description: 'Calls made (an ingestion or a search each)', example: 3 }) calls: number;
  @ApiProperty({ description: 'Input tokens as the provider reported them', example: 48200 }) inputTokens: number;
  @ApiProperty({ description: 'Cost in USD at the catalog\'s prices (0 for a model the catalog has no price of)', example: '0.00096400' }) cost: string;
}

@ApiSchema({ description: 'Usage per organization, agent, model and day, and the knowledge base\'s embedding calls' })
export class UsageReportDto {
  @ApiProperty({ description: 'First day', example: '2026-12-01' }) from: string;
  @ApiProperty({ description: 'Last day', example: '2026-12-31' }) to: string;
  @ApiProperty({ description: 'Runs of the organization in the range', example: 12 }) runs: number;
  @ApiProperty({ type: TokenUsageDto, description: 'Tokens of the organization in the range: its runs\' and its embedding calls\' (input tokens)', example: USAGE_EXAMPLE }) usage: TokenUsageDto;
  @ApiProperty({ description: 'Cost of the organization in the range, USD: its runs\' and its embedding calls\'', example: '0.01234000' }) cost: string;
  @ApiProperty({ type: [UsageRowDto], description: 'Runs per day, agent and model', example: [] }) rows: UsageRowDto[];
  @ApiProperty({ type: [EmbeddingUsageRowDto], description: 'The knowledge base\'s embedding calls per day, purpose and model (spent on the organization\'s budget, as runs are)', example: [] })
  embeddings: EmbeddingUsageRowDto[];
}

// ---------------------------------------------------------------- the organization's provider key
@ApiSchema({ description: 'The organization\'s own provider key (stored encrypted, never answered)' })
export class SetProviderKeyDto {
  @ApiProperty({ description: 'API key of the OpenAI-compatible provider', example: 'sk-proj-EXAMPLEKEY0000', minLength: 8, maxLength: 500 }) @IsString() @Length(8, 500) apiKey: string;
  @ApiPropertyOptional({ type: String, nullable: true, description: 'Base URL of an OpenAI-compatible endpoint (http or https, without credentials, at a public address); absent: the platform\'s', example: 'https://api.openai.com/v1' })
  @IsOptional() @Matches(/^https?:\/\/[^\s]{1,500}$/, { message: 'baseUrl must be an http(s) URL' }) baseUrl?: string | null;
}

@ApiSchema({ description: 'Whether the organization has its own key (the key itself is never answered)' })
export class ProviderKeyDto {
  @ApiProperty({ description: 'Last four characters of the key', example: '0000' }) keyHint: string;
  @ApiProperty({ type: String, nullable: true, description: 'Its endpoint; null: the platform\'s', example: null }) baseUrl: string | null;
  @ApiProperty({ description: 'Stored (ISO 8601)', example: '2026-12-02T09:00:00.000Z' }) updatedAt: string;
}

// ---------------------------------------------------------------- automation
@ApiSchema({ description: 'A trigger that runs the agent on a schedule or on a domain event, with your claims' })
export class CreateTriggerDto {
  @ApiProperty({ enum: ['schedule', 'event'], description: 'schedule: cron (UTC); event: a domain event of the outbox', example: 'event' }) @IsIn(['schedule', 'event']) kind: 'schedule' | 'event';
  @ApiPropertyOptional({ description: 'kind schedule: a cron expression, UTC (5 fields: minute hour day month weekday)', example: '0 7 * * 1' })
  @IsOptional() @IsString() @Length(1, 100) cron?: string;
  @ApiPropertyOptional({ description: 'kind event: the domain event type', example: 'bill.submitted' })
  @IsOptional() @Matches(/^[a-z0-9_]+(\.[a-z0-9_]+)+$/, { message: 'eventType must look like bill.submitted' }) eventType?: string;
  @ApiProperty({ description: 'What the agent is told when it fires (an event\'s payload follows)', example: 'Review this bill and list anything unusual.', minLength: 1, maxLength: 20000 })
  @IsString() @Length(1, 20_000) prompt: string;
}

@ApiSchema({ description: 'An automation trigger of an agent' })
export class TriggerDto {
  @ApiProperty({ format: 'uuid', description: 'Trigger id', example: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' }) id: string;
  @ApiProperty({ format: 'uuid', description: 'Agent', example: AGENT_ID }) agentId: string;
  @ApiProperty({ enum: ['schedule', 'event'], description: 'Kind', example: 'event' }) kind: string;
  @ApiProperty({ type: String, nullable: true, description: 'Cron expression (UTC) of a schedule', example: null }) cron: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Domain event type of an event trigger', example: 'bill.submitted' }) eventType: string | null;
  @ApiProperty({ description: 'What the agent is told', example: 'Review this bill.' }) prompt: string;
  @ApiProperty({ format: 'uuid', description: 'The member whose claims its runs execute with', example: USER_ID }) createdBy: string;
  @ApiProperty({ enum: ['active', 'stopped'], description: 'stopped: its member may no longer run it (see lastError)', example: 'active' }) status: string;
  @ApiProperty({ type: String, nullable: true, description: 'Why it stopped', example: null }) lastError: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Last firing (ISO 8601)', example: null }) lastFiredAt: string | null;
  @ApiProperty({ description: 'Created (ISO 8601)', example: '2026-12-02T09:00:00.000Z' }) createdAt: string;
}
