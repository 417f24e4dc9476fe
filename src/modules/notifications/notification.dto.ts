import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { ArrayMaxSize, ArrayMinSize, IsBoolean, IsIn, IsOptional, IsUUID } from 'class-validator';
import { NestedList } from '../../platform/http/nested-list.js';
import { PageQuery } from '../../platform/http/pagination.js';
import { PageInfo } from '../../platform/http/openapi.js';

export const NOTIFICATION_CATEGORIES = ['security', 'billing', 'finance', 'ai', 'organization'] as const;
export type NotificationCategory = (typeof NOTIFICATION_CATEGORIES)[number];
export const NOTIFICATION_CHANNELS = ['email', 'in_app'] as const;
export type NotificationChannel = (typeof NOTIFICATION_CHANNELS)[number];

const boolQuery = ({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value);

export class NotificationQuery extends PageQuery {
  @ApiPropertyOptional({ description: 'Only unread notices', example: true })
  @IsOptional() @Transform(boolQuery) @IsBoolean()
  unread?: boolean;

  @ApiPropertyOptional({ description: 'Only this category', enum: NOTIFICATION_CATEGORIES, example: 'billing' })
  @IsOptional() @IsIn(NOTIFICATION_CATEGORIES as unknown as string[])
  category?: NotificationCategory;

  @ApiPropertyOptional({ description: 'Only notices from this organization', format: 'uuid', example: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' })
  @IsOptional() @IsUUID()
  orgId?: string;

  @ApiPropertyOptional({ description: 'The archive instead of the inbox', example: false })
  @IsOptional() @Transform(boolQuery) @IsBoolean()
  archived?: boolean;
}

@ApiSchema({ description: 'An in-app notice to the signed-in user' })
export class NotificationDto {
  @ApiProperty({ description: 'The notice id', format: 'uuid', example: '9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d' }) id: string;
  @ApiProperty({ description: 'The organization it is about', format: 'uuid', example: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' }) orgId: string;
  @ApiProperty({ description: 'The domain event that caused it', example: 'payment.failed' }) eventType: string;
  @ApiProperty({ description: 'Its category (preferences are per category)', enum: NOTIFICATION_CATEGORIES, example: 'billing' }) category: NotificationCategory;
  @ApiProperty({ description: 'One line', example: 'A payment for Acme failed' }) title: string;
  @ApiProperty({ description: 'The text', example: 'The payment for the omnizen professional plan failed; the subscription is past_due.' }) body: string;
  @ApiProperty({ description: 'When it was created', example: '2026-12-02T08:00:00.000Z' }) createdAt: Date;
  @ApiProperty({ description: 'When it was read; null while unread', type: Date, nullable: true, example: null }) readAt: Date | null;
  @ApiProperty({ description: 'When it was archived; null while in the inbox', type: Date, nullable: true, example: null }) archivedAt: Date | null;
}

@ApiSchema({ description: 'A page of notices, newest first' })
export class NotificationPage extends PageInfo {
  @ApiProperty({ description: 'The notices on this page', type: [NotificationDto] }) items: NotificationDto[];
}

@ApiSchema({ description: 'Unread notices of one category' })
export class CategoryCountDto {
  @ApiProperty({ description: 'The category', enum: NOTIFICATION_CATEGORIES, example: 'billing' }) category: NotificationCategory;
  @ApiProperty({ description: 'Unread notices in it', example: 2 }) count: number;
}

@ApiSchema({ description: 'How many notices are unread (counted from the notices themselves, so it never drifts)' })
export class UnreadCountDto {
  @ApiProperty({ description: 'Unread notices in the inbox (archived ones excluded)', example: 3 }) unread: number;
  @ApiProperty({ description: 'Per category (categories without unread notices are left out)', type: [CategoryCountDto] }) byCategory: CategoryCountDto[];
}

@ApiSchema({ description: 'Which unread notices to mark read (all when empty)' })
export class MarkAllReadDto {
  @ApiPropertyOptional({ description: 'Only this category', enum: NOTIFICATION_CATEGORIES, example: 'organization' })
  @IsOptional() @IsIn(NOTIFICATION_CATEGORIES as unknown as string[])
  category?: NotificationCategory;

  @ApiPropertyOptional({ description: 'Only notices from this organization', format: 'uuid', example: '3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b' })
  @IsOptional() @IsUUID()
  orgId?: string;
}

@ApiSchema({ description: 'How many notices were marked read' })
export class MarkedReadDto {
  @ApiProperty({ description: 'Notices that were unread and are now read', example: 3 }) marked: number;
}

@ApiSchema({ description: 'Whether notices of one category reach the user on one channel' })
export class PreferenceDto {
  @ApiProperty({ description: 'The category', enum: NOTIFICATION_CATEGORIES, example: 'finance' })
  @IsIn(NOTIFICATION_CATEGORIES as unknown as string[])
  category: NotificationCategory;

  @ApiProperty({ description: 'The channel', enum: NOTIFICATION_CHANNELS, example: 'email' })
  @IsIn(NOTIFICATION_CHANNELS as unknown as string[])
  channel: NotificationChannel;

  @ApiProperty({ description: 'On or off (security is always on)', example: true })
  @IsBoolean()
  enabled: boolean;

  @ApiProperty({ description: 'E-mail only: one summary per hour instead of one e-mail per notice (not for security: its e-mails are sent at once)', example: true })
  @IsBoolean()
  digest: boolean;
}

@ApiSchema({ description: "The signed-in user's notification preferences: every category and channel (defaults: on, no digest)" })
export class PreferencesDto {
  @ApiProperty({ description: 'One entry per category and channel', type: [PreferenceDto] }) items: PreferenceDto[];
}

@ApiSchema({ description: 'Preferences to change (the others stay as they are)' })
export class UpdatePreferencesDto {
  @ApiProperty({
    description: 'The category/channel pairs to set', type: [PreferenceDto],
    example: [{ category: 'finance', channel: 'email', enabled: true, digest: true }, { category: 'ai', channel: 'in_app', enabled: false, digest: false }],
  })
  @NestedList(() => PreferenceDto, 'a preference') @ArrayMinSize(1) @ArrayMaxSize(10)
  items: PreferenceDto[];
}
