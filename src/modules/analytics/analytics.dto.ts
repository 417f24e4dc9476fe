import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsInt, IsObject, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { CalendarDate } from '../../platform/http/calendar-date.js';

export const EVENT_NAME = /^[a-z][a-z0-9_.:-]{0,99}$/;
export const MAX_BATCH = 500;
/**
 * Property keys PostHog's capture reads as the event's own fields (properties.distinct_id is taken before the event's
 * distinct id: an app's would file the event under another organization's person): an event with one is rejected.
 */
export const POSTHOG_RESERVED_PROPERTIES: readonly string[] = ['distinct_id', 'token', 'api_key', 'uuid', 'timestamp'];

/**
 * The events the modules themselves record (source 'server', AnalyticsService.record): an app may not send these names,
 * whose roll-ups and feature usage count what the server saw. A new server event is added here (ServerEvent's name is
 * typed by this list).
 */
export const SERVER_EVENT_NAMES = ['user.signed_in', 'ledger.entry_posted'] as const;
export type ServerEventName = (typeof SERVER_EVENT_NAMES)[number];

/** One event as an app sends it. Validated one by one (AnalyticsService), so one bad event does not sink the batch. */
@ApiSchema({ description: 'One usage event: what happened, when, to whom, with free-form properties' })
export class AnalyticsEventInputDto {
  @ApiProperty({ description: `Event name: lower case letters, digits and _ . : - (up to 100), starting with a letter. The server's own event names (${SERVER_EVENT_NAMES.join(', ')}) are reserved: an event with one is rejected, naming it`, example: 'invoice.viewed' })
  @IsString() @Matches(EVENT_NAME, { message: 'name must be lower case letters, digits and _ . : - (up to 100), starting with a letter' })
  name: string;

  @ApiPropertyOptional({ description: `Properties of the event: a JSON object of up to 8 KB. Its keys may not start with $ (PostHog reads those as instructions, e.g. $set changes a person), nor be one of ${POSTHOG_RESERVED_PROPERTIES.join(', ')} (PostHog reads those as the event's own: distinct_id would name another person): an event with one is rejected, naming the key`, type: 'object', additionalProperties: true, example: { invoiceId: 'INV-1042', source: 'email' } })
  @IsOptional() @IsObject()
  properties?: Record<string, unknown>;

  @ApiPropertyOptional({ description: 'When it happened (default: now), ISO 8601; at most 28 days ago and 1 day ahead. A date-time without an offset '
    + '(2026-12-02T08:30:00) is read as UTC, as the reports\' days are; a date alone (2026-12-02) as its UTC midnight', format: 'date-time', example: '2026-12-02T08:30:00.000Z' })
  @IsOptional() @IsString() // the batch's events are checked by AnalyticsService, whose form this describes (not Timestamp's)
  timestamp?: string;

  @ApiPropertyOptional({ description: 'The acting user (default: the signed-in caller); up to 200 characters. Any id the app uses, counted as given in '
    + 'the organization\'s reports; only the signed-in caller\'s own id is sent to PostHog as that user: any other id (an API key\'s, another user\'s) '
    + 'goes there as org:<orgId>:user:<userId>, a person of this organization only', example: 'b3c1f2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d' })
  @IsOptional() @IsString() @MaxLength(200)
  userId?: string;

  @ApiPropertyOptional({ description: 'An anonymous visitor id, when no user is known; up to 200 characters (sent to PostHog as org:<orgId>:anon:<anonymousId>)', example: 'anon-6f0e4c55' })
  @IsOptional() @IsString() @MaxLength(200)
  anonymousId?: string;
}

@ApiSchema({ description: 'A batch of up to 500 usage events' })
export class AnalyticsBatchDto {
  @ApiProperty({ description: 'The events (1 to 500); each is checked on its own: bad ones are reported by index, the others stored', type: [AnalyticsEventInputDto],
    example: [{ name: 'invoice.viewed', properties: { invoiceId: 'INV-1042' }, anonymousId: 'anon-6f0e4c55' }] })
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(MAX_BATCH)
  events: unknown[];
}

@ApiSchema({ description: 'An event of the batch that was not stored, and why' })
export class RejectedEventDto {
  @ApiProperty({ description: 'Its index in the batch (0-based)', example: 3 }) index: number;
  @ApiProperty({ description: 'What is wrong with it', type: [String], example: ['name must be lower case letters, digits and _ . : - (up to 100), starting with a letter'] }) problems: string[];
}

@ApiSchema({ description: 'What became of a batch: how many events were stored, and each rejected one by index' })
export class AnalyticsBatchResultDto {
  @ApiProperty({ description: 'Events stored', example: 99 }) accepted: number;
  @ApiProperty({ description: 'Events not stored, by index', type: [RejectedEventDto] }) rejected: RejectedEventDto[];
}

@ApiSchema({ description: 'A date range (UTC days, both ends included)' })
export class AnalyticsRangeQuery {
  @ApiProperty({ description: 'First day (UTC), YYYY-MM-DD', example: '2026-11-01' }) @CalendarDate('from') from: string;
  @ApiProperty({ description: 'Last day (UTC), YYYY-MM-DD, included', example: '2026-11-30' }) @CalendarDate('to') to: string;
}

export class AnalyticsCountsQuery extends AnalyticsRangeQuery {
  @ApiPropertyOptional({ description: 'Only this event', example: 'invoice.viewed' }) @IsOptional() @IsString() @Matches(EVENT_NAME) event?: string;

  @ApiPropertyOptional({ description: 'Rows per page (1 to 1000, default 1000); the X-Next-Cursor header continues the list', minimum: 1, maximum: 1000, default: 1000, example: 1000 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1000)
  limit?: number;

  @ApiPropertyOptional({ description: 'Opaque cursor: the X-Next-Cursor header of the previous page' })
  @IsOptional() @IsString()
  cursor?: string;
}

export class AnalyticsTopQuery extends AnalyticsRangeQuery {
  @ApiPropertyOptional({ description: 'How many events (1 to 100, default 10)', example: 10 }) @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(100) limit?: number;
}

@ApiSchema({ description: 'How often one event happened on one day' })
export class EventDayCountDto {
  @ApiProperty({ description: 'The day (UTC)', example: '2026-11-03' }) day: string;
  @ApiProperty({ description: 'The event name', example: 'invoice.viewed' }) event: string;
  @ApiProperty({ description: 'How many times it happened', example: 42 }) events: number;
  @ApiProperty({ description: 'How many distinct users did it', example: 7 }) users: number;
}

@ApiSchema({ description: 'An event and how often it happened in the range' })
export class TopEventDto {
  @ApiProperty({ description: 'The event name', example: 'invoice.viewed' }) event: string;
  @ApiProperty({ description: 'How many times it happened in the range', example: 420 }) events: number;
}

@ApiSchema({ description: 'Active users on one day' })
export class DailyActiveUsersDto {
  @ApiProperty({ description: 'The day (UTC)', example: '2026-11-03' }) day: string;
  @ApiProperty({ description: 'Distinct users with at least one event that day', example: 12 }) users: number;
}

@ApiSchema({ description: 'Active users in one calendar month' })
export class MonthlyActiveUsersDto {
  @ApiProperty({ description: 'The month (UTC), YYYY-MM', example: '2026-11' }) month: string;
  @ApiProperty({ description: 'Distinct users with at least one event in the month (within the range asked)', example: 31 }) users: number;
}

@ApiSchema({ description: 'Daily and monthly active users of the organization (users: events with a userId)' })
export class ActiveUsersDto {
  @ApiProperty({ description: 'One entry per day of the range with any activity', type: [DailyActiveUsersDto] }) daily: DailyActiveUsersDto[];
  @ApiProperty({ description: 'One entry per calendar month of the range with any activity', type: [MonthlyActiveUsersDto] }) monthly: MonthlyActiveUsersDto[];
}

@ApiSchema({ description: 'How much one feature (event) is used by the organizations of one plan' })
export class FeatureUsageByPlanDto {
  @ApiProperty({ description: 'The OmniZen plan of the organizations', example: 'professional' }) plan: string;
  @ApiProperty({ description: 'The event name', example: 'invoice.issued' }) event: string;
  @ApiProperty({ description: 'Organizations of the plan that used it', example: 14 }) organizations: number;
  @ApiProperty({ description: 'How many times it happened', example: 3120 }) events: number;
}
