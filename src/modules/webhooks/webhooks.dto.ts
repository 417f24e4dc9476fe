import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import {
  ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUUID, Length, Matches, Max, Min, ValidateIf,
} from 'class-validator';
import { Timestamp } from '../../platform/http/calendar-date.js';
import { PageInfo } from '../../platform/http/openapi.js';
import { PageQuery } from '../../platform/http/pagination.js';

const EVENT_TYPE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const ENDPOINT_ID = '3d6f0a2b-1c4e-4f8a-9b7d-2e5c8a1f0b3d';
const MESSAGE_ID = '8b2e4f6a-0c1d-4e3f-a5b7-c9d1e3f5a7b9';
const AT = '2026-03-02T09:30:00.000Z';

@ApiSchema({ description: 'An event type of the catalog: what it means, its payload schema (JSON Schema 2020-12) and an example payload' })
export class EventTypeDto {
  @ApiProperty({ description: 'The event type, `<entity>.<past-tense verb>`', example: 'journal_entry.posted' }) type: string;
  @ApiProperty({ description: 'Version of the payload schema (a breaking change is a new version)', example: 1 }) version: number;
  @ApiProperty({ description: 'Notification category', enum: ['security', 'billing', 'finance', 'ai', 'organization'], example: 'finance' }) category: string;
  @ApiProperty({ description: 'When it is emitted', example: 'A journal entry was posted' }) description: string;
  @ApiProperty({ description: 'JSON Schema (draft 2020-12) of the payload (`data` of the webhook body)', type: 'object', additionalProperties: true, example: { type: 'object' } })
  payloadSchema: Record<string, unknown>;
  @ApiProperty({ description: 'An example payload', type: 'object', additionalProperties: true, example: { entryId: ENDPOINT_ID } }) example: Record<string, unknown>;
  @ApiProperty({ description: 'The component schema of the delivered body in the OpenAPI document', example: '#/components/schemas/WebhookEvent.journal_entry.posted.v1' }) bodySchemaRef: string;
}

@ApiSchema({ description: 'A new webhook endpoint' })
export class CreateWebhookEndpointDto {
  @ApiProperty({ description: 'Where to deliver: an absolute https URL (http only outside production); non-public addresses are refused', example: 'https://hooks.example.com/omnizen' })
  @IsString() @Length(8, 2000) url: string;
  @ApiPropertyOptional({ description: 'What the endpoint is for', example: 'ERP sync' }) @IsOptional() @IsString() @Length(0, 500) description?: string;
  @ApiPropertyOptional({ description: 'The event types to deliver (GET /v1/webhooks/event-types); left out or null: every type', type: [String], nullable: true, example: ['journal_entry.posted'] })
  @IsOptional() @IsArray() @ArrayMinSize(1) @ArrayMaxSize(100) @ArrayUnique() @Matches(EVENT_TYPE, { each: true, message: 'eventTypes must be event types like journal_entry.posted' })
  eventTypes?: string[] | null;
  @ApiPropertyOptional({ description: 'Whether events are delivered (default true)', example: true }) @IsOptional() @IsBoolean() enabled?: boolean;
}

@ApiSchema({ description: 'Changes to a webhook endpoint; fields left out keep their value' })
export class UpdateWebhookEndpointDto {
  @ApiPropertyOptional({ description: 'Where to deliver', example: 'https://hooks.example.com/omnizen/v2' }) @IsOptional() @IsString() @Length(8, 2000) url?: string;
  @ApiPropertyOptional({ description: 'What the endpoint is for', example: 'ERP sync' }) @IsOptional() @IsString() @Length(0, 500) description?: string;
  @ApiPropertyOptional({ description: 'The event types to deliver; null: every type', type: [String], nullable: true, example: ['journal_entry.posted', 'period.closed'] })
  @ValidateIf((_, v) => v !== undefined && v !== null) @IsArray() @ArrayMinSize(1) @ArrayMaxSize(100) @ArrayUnique()
  @Matches(EVENT_TYPE, { each: true, message: 'eventTypes must be event types like journal_entry.posted' })
  eventTypes?: string[] | null;
  @ApiPropertyOptional({ description: 'Enable or disable; enabling clears the reason the delivery worker disabled it', example: true }) @IsOptional() @IsBoolean() enabled?: boolean;
}

@ApiSchema({ description: 'A webhook endpoint (its signing secret is shown only when created or rotated)' })
export class WebhookEndpointDto {
  @ApiProperty({ description: 'The endpoint id', format: 'uuid', example: ENDPOINT_ID }) id: string;
  @ApiProperty({ description: 'Where events are delivered', example: 'https://hooks.example.com/omnizen' }) url: string;
  @ApiProperty({ description: 'What the endpoint is for', example: 'ERP sync' }) description: string;
  @ApiProperty({ description: 'The event types delivered; null: every type', type: [String], nullable: true, example: ['journal_entry.posted'] }) eventTypes: string[] | null;
  @ApiProperty({ description: 'Whether events are delivered', example: true }) enabled: boolean;
  @ApiProperty({
    description: 'Why it was disabled, when not by a person (gone: it answered 410; failing: 5 days of failures; organization_deleted: its organization was deleted; '
      + 'account_claimed: the account that set it up before its e-mail was verified was claimed by the owner of the address; configurer_removed, configurer_left, '
      + 'configurer_demoted, configurer_erased, configurer_deleted, configurer_no_longer_admin: a person answerable for it (urlSetBy or secretSetBy) stopped being '
      + 'owner or admin of the organization: removed, left, demoted below admin, erased, their user deleted, or before this was checked. They chose its URL or '
      + 'knew its signing secret: check the URL and rotate the secret before enabling it again); null otherwise',
    enum: ['gone', 'failing', 'organization_deleted', 'account_claimed', 'configurer_removed', 'configurer_left', 'configurer_demoted', 'configurer_erased',
      'configurer_deleted', 'configurer_no_longer_admin', null],
    type: String, nullable: true, example: null,
  })
  disabledReason: string | null;
  @ApiProperty({ description: 'When it was disabled; null while enabled', type: Date, nullable: true, example: null }) disabledAt: Date | null;
  @ApiProperty({ description: 'First failure since the last successful delivery; null when the last delivery succeeded', type: Date, nullable: true, example: null }) failingSince: Date | null;
  @ApiProperty({
    description: 'Until when the previous secret (of the last rotation) still signs; null when none does. It stops at once when the person who '
      + 'received it (the secret\'s receiver before the rotation) stops being owner or admin of the organization, or their account is claimed; '
      + 'and when the endpoint is enabled again while its receiver is no longer owner or admin, or unknown (the secret rotated was received by '
      + 'no known person: a service created the endpoint, or the user was deleted or the account claimed). A rotation of a secret taken on when '
      + 'the endpoint was enabled (in place of a receiver no longer owner or admin, or unknown) keeps none',
    type: Date, nullable: true, example: null,
  }) previousSecretExpiresAt: Date | null;
  @ApiProperty({
    description: 'Who chose where its events go: the person who created it or last changed its URL (or enabled it while the one before was no '
      + 'longer owner or admin, taking it on); set by the server. It is disabled when they stop being owner or admin of the organization. Null '
      + 'when a service created it, that user was deleted, their account was claimed by the owner of its address, or it was set up before this was '
      + 'recorded and the audit log names no one. A service\'s '
      + 'change leaves it to the person before',
    type: String, nullable: true, example: 'b3c1f2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  }) urlSetBy: string | null;
  @ApiProperty({
    description: 'Who received its current signing secret: the person who created it or last rotated the secret (or enabled it while the one '
      + 'before was no longer owner or admin, taking it on); set by the server. It is disabled when they stop being owner or admin of the '
      + 'organization. Null as urlSetBy',
    type: String, nullable: true, example: 'b3c1f2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  }) secretSetBy: string | null;
  @ApiProperty({
    description: 'Whether its current signing secret was taken on: a person enabled the endpoint in place of the secret\'s receiver on record, '
      + 'no longer owner or admin of the organization or unknown, and the secret is still the one it had then (whoever was given it no longer '
      + 'answers for it). Its next rotation keeps no overlap: the new secret alone signs at once, and an overlapSeconds above 0 is a 409 '
      + 'webhooks.secret_taken_on (rotateWebhookSecret). Set by the server; a rotation ends it (false)',
    example: false, readOnly: true,
  }) secretTakenOn: boolean;
  @ApiProperty({ description: 'When it was created', example: AT }) createdAt: Date;
  @ApiProperty({ description: 'When it was last changed', example: AT }) updatedAt: Date;
}

@ApiSchema({ description: 'A webhook endpoint with its signing secret: shown this once, store it now' })
export class WebhookEndpointWithSecretDto extends WebhookEndpointDto {
  @ApiProperty({ description: 'The signing secret (Standard Webhooks, whsec_ + base64): verify webhook-signature with it', example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }) secret: string;
}

@ApiSchema({ description: 'A signing-secret rotation' })
export class RotateWebhookSecretDto {
  @ApiPropertyOptional({
    description: 'How long the previous secret still signs, in seconds (default WEBHOOKS_SECRET_OVERLAP_SECONDS, 24 h); 0: at once only the new one. '
      + 'A secret taken on when the endpoint was enabled keeps no overlap: the default is then 0, and a value above 0 a 409 webhooks.secret_taken_on',
    example: 3600, minimum: 0, maximum: 2_592_000,
  })
  @IsOptional() @IsInt() @Min(0) @Max(2_592_000) overlapSeconds?: number;
}

@ApiSchema({ description: 'One event for one endpoint: its delivery state (the same webhook-id on every attempt)' })
export class WebhookMessageDto {
  @ApiProperty({ description: 'The message id', format: 'uuid', example: MESSAGE_ID }) id: string;
  @ApiProperty({ description: 'The webhook-id header it is delivered with (msg_...)', example: 'msg_8b2e4f6a0c1d4e3fa5b7c9d1e3f5a7b9' }) webhookId: string;
  @ApiProperty({ description: 'The endpoint', format: 'uuid', example: ENDPOINT_ID }) endpointId: string;
  @ApiProperty({ description: 'The event id (evt_...); null for a ping', type: String, nullable: true, example: 'evt_4711' }) eventId: string | null;
  @ApiProperty({ description: 'The event type', example: 'journal_entry.posted' }) eventType: string;
  @ApiProperty({ description: 'pending: being delivered or due again; succeeded; failed: every attempt of the schedule failed (replayable)', enum: ['pending', 'succeeded', 'failed'], example: 'succeeded' })
  status: string;
  @ApiProperty({ description: 'Attempts of the current round (a replay starts a new one)', example: 1 }) attemptCount: number;
  @ApiProperty({ description: 'When the next attempt is due; null unless pending', type: Date, nullable: true, example: null }) nextAttemptAt: Date | null;
  @ApiProperty({ description: 'When it was last attempted; null before the first attempt', type: Date, nullable: true, example: AT }) lastAttemptAt: Date | null;
  @ApiProperty({ description: 'When it was created (fan-out, or ping)', example: AT }) createdAt: Date;
  @ApiProperty({ description: 'The JSON body delivered', type: 'object', additionalProperties: true, example: { id: 'evt_4711', type: 'journal_entry.posted', data: {} } }) body: Record<string, unknown>;
}

@ApiSchema({ description: 'One delivery attempt: when, the answer (status, a truncated body) or the error, and how long it took' })
export class WebhookAttemptDto {
  @ApiProperty({ description: 'The attempt id', example: '42' }) id: string;
  @ApiProperty({ description: 'The message', format: 'uuid', example: MESSAGE_ID }) messageId: string;
  @ApiProperty({ description: 'The event type of the message', example: 'journal_entry.posted' }) eventType: string;
  @ApiProperty({ description: 'When it was sent', example: AT }) attemptedAt: Date;
  @ApiProperty({ description: 'Whether the endpoint answered 2xx', example: true }) succeeded: boolean;
  @ApiProperty({ description: 'The HTTP status; null when there was no answer (timeout, connection refused)', type: Number, nullable: true, example: 200 }) statusCode: number | null;
  @ApiProperty({ description: 'Time to the answer (or the error), in ms', example: 87 }) latencyMs: number;
  @ApiProperty({ description: 'The first 1 KiB of the answer; null when there was none. A body that did not end within 1 s of the status (less if the timeout was nearer) is kept as far as it came, followed by " [the body did not end within N ms of the status: cut here]"', type: String, nullable: true, example: 'ok' }) responseBody: string | null;
  @ApiProperty({ description: 'Why it failed without an answer (timeout, refused address, connection error); null otherwise', type: String, nullable: true, example: null }) error: string | null;
}

@ApiSchema({ description: 'A message with every attempt of it, oldest first' })
export class WebhookMessageDetailDto extends WebhookMessageDto {
  @ApiProperty({ description: 'Its attempts, oldest first', type: [WebhookAttemptDto] }) attemptLog: WebhookAttemptDto[];
}

@ApiSchema({ description: 'A page of messages, newest first' })
export class WebhookMessagePage extends PageInfo {
  @ApiProperty({ description: 'The messages on this page', type: [WebhookMessageDto] }) items: WebhookMessageDto[];
}

@ApiSchema({ description: 'A page of delivery attempts, newest first' })
export class WebhookAttemptPage extends PageInfo {
  @ApiProperty({ description: 'The attempts on this page', type: [WebhookAttemptDto] }) items: WebhookAttemptDto[];
}

export class WebhookMessageQuery extends PageQuery {
  @ApiPropertyOptional({ enum: ['pending', 'succeeded', 'failed'], description: 'Only messages in this state' }) @IsOptional() @IsIn(['pending', 'succeeded', 'failed']) status?: string;
  @ApiPropertyOptional({ description: 'Only messages of this event type', example: 'journal_entry.posted' }) @IsOptional() @IsString() @Length(1, 100) eventType?: string;
}

export class WebhookAttemptQuery extends PageQuery {
  @ApiPropertyOptional({ enum: ['succeeded', 'failed'], description: 'Only successful or only failed attempts' }) @IsOptional() @IsIn(['succeeded', 'failed']) status?: string;
  @ApiPropertyOptional({ description: 'Only attempts of messages of this event type', example: 'journal_entry.posted' }) @IsOptional() @IsString() @Length(1, 100) eventType?: string;
  @ApiPropertyOptional({ description: 'Only attempts of this message', format: 'uuid' }) @IsOptional() @IsUUID() messageId?: string;
}

@ApiSchema({ description: 'Replay every failed message created since a time' })
export class ReplayFailedDto {
  @Timestamp('since') @ApiProperty({ description: 'Messages created at or after this time', format: 'date-time', example: AT }) since: string;
}

@ApiSchema({ description: 'How many messages were queued again' })
export class ReplayResultDto {
  @ApiProperty({ description: 'Failed messages queued for a new round of attempts', example: 3 }) replayed: number;
}
