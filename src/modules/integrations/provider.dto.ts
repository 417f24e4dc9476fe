import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, ArrayMinSize, ArrayUnique, Contains, IsArray, IsBoolean, IsInt, IsOptional, IsString, IsUrl, Matches, Max,
  MaxLength, Min, ValidateBy, ValidateIf, ValidateNested, type ValidationOptions,
} from 'class-validator';
import { IANAZone } from 'luxon';
import { MAX_CALENDARS } from './busy-time-source.js';
import { HORIZON_DAYS, MAX_RANGE_DAYS } from './availability.js';

/** A time zone from the IANA database (luxon checks it against Intl). */
export function IsIanaZone(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy({
    name: 'isIanaZone',
    validator: {
      validate: (v) => typeof v === 'string' && (v === 'UTC' || (v.includes('/') && IANAZone.isValidZone(v))),
      defaultMessage: (a) => `${a?.property} must be an IANA time zone such as Asia/Dubai`,
    },
  }, options);
}

/**
 * A URL without a user part (`https://user:password@host/`), read as the HTTP client reads it (WHATWG): a calendar's
 * credentials are the integration's secret, sealed, never a setting in the clear (the client also refuses such a URL,
 * quoting it, password included, in its error). Whether the text is a URL at all is IsUrl's to say.
 */
export function IsUrlWithoutCredentials(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy({
    name: 'isUrlWithoutCredentials',
    validator: {
      validate: (v) => {
        if (typeof v !== 'string') return true;
        try {
          const url = new URL(v);
          return !url.username && !url.password;
        } catch {
          return true;
        }
      },
      defaultMessage: (a) => `${a?.property} must not carry a user name or password: the calendar's credentials go in the integration's secret`,
    },
  }, options);
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

@ApiSchema({ description: 'When the provider can be booked, in their time zone' })
export class WorkingHoursDto {
  @ApiProperty({ description: 'IANA time zone the days and times are in', example: 'Asia/Dubai' }) @IsIanaZone() timezone: string;
  @ApiProperty({ type: 'array', items: { type: 'integer', minimum: 1, maximum: 7 }, minItems: 1, maxItems: 7, uniqueItems: true, example: [1, 2, 3, 4, 5], description: 'ISO weekdays: 1 = Monday ... 7 = Sunday' })
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(7) @ArrayUnique() @IsInt({ each: true }) @Min(1, { each: true }) @Max(7, { each: true })
  days: number[];
  @ApiProperty({ description: 'Start of the working day, HH:MM local time', example: '09:00' }) @Matches(HHMM, { message: 'start must be a time HH:MM' }) start: string;
  @ApiProperty({ example: '17:00', description: 'After start' }) @Matches(HHMM, { message: 'end must be a time HH:MM' }) end: string;
}

@ApiSchema({ description: "The provider's WhatsApp number and booking message" })
export class WhatsappDto {
  @ApiProperty({ description: 'Whether slots carry a WhatsApp booking link' }) @IsBoolean() enabled: boolean;
  @ApiPropertyOptional({ example: '+971500000000', description: 'Required when enabled' })
  @ValidateIf((o) => o.enabled === true || o.phoneE164 !== undefined)
  @Matches(/^\+[1-9]\d{6,14}$/, { message: 'phoneE164 must be a phone number in E.164 form, e.g. +971500000000' })
  phoneE164?: string;
  @ApiPropertyOptional({ example: 'Hi! Can I book {date} at {time}?', description: 'Required when enabled; must contain {date} and {time}' })
  @ValidateIf((o) => o.enabled === true || o.messageTemplate !== undefined)
  @IsString() @MaxLength(500) @Contains('{date}') @Contains('{time}')
  messageTemplate?: string;
}

@ApiSchema({ description: 'The calendars whose busy times block slots' })
export class CalendarSettingsDto {
  @ApiProperty({ description: 'CalDAV URLs of the calendars whose busy times block slots, without a user name or password; empty: none block', example: ['https://caldav.icloud.com/123456789/calendars/home/'] })
  @IsArray() @ArrayMaxSize(MAX_CALENDARS) @ArrayUnique()
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false }, { each: true, message: 'each selectedCalendarIds entry must be a calendar URL' })
  @IsUrlWithoutCredentials({ each: true, message: 'each selectedCalendarIds entry must be a calendar URL without a user name or password (the credentials go in the integration\'s secret)' })
  @MaxLength(2048, { each: true })
  selectedCalendarIds: string[];
}

@ApiSchema({ description: 'Settings groups of a provider profile; a group given replaces that group' })
export class ProviderSettingsDto {
  @ApiPropertyOptional({ description: 'When the provider can be booked; without it there are no slots', type: WorkingHoursDto }) @IsOptional() @ValidateNested() @Type(() => WorkingHoursDto) workingHours?: WorkingHoursDto;
  @ApiPropertyOptional({ description: 'WhatsApp booking link settings', type: WhatsappDto }) @IsOptional() @ValidateNested() @Type(() => WhatsappDto) whatsapp?: WhatsappDto;
  @ApiPropertyOptional({ description: 'Which connected calendars block slots', type: CalendarSettingsDto }) @IsOptional() @ValidateNested() @Type(() => CalendarSettingsDto) calendar?: CalendarSettingsDto;
}

@ApiSchema({ description: 'Changes to the provider profile; fields left out keep their value, null clears the slug' })
export class UpdateProviderDto {
  @ApiPropertyOptional({ type: String, example: 'kimlindberg', nullable: true, description: 'Lowercase letters, digits and single dashes; null clears it' })
  @ValidateIf((o) => o.publicSlug !== null) @IsOptional() @IsString()
  @Matches(/^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/, { message: 'publicSlug must be 3-63 lowercase letters, digits and single dashes (not at the ends)' })
  publicSlug?: string | null;
  @ApiPropertyOptional({ description: 'Whether the public booking page is visible under the slug' }) @IsOptional() @IsBoolean() isPublic?: boolean;
  @ApiPropertyOptional({ description: 'IANA time zone of the profile', example: 'Asia/Dubai' }) @IsOptional() @IsIanaZone() timezone?: string;
  @ApiPropertyOptional({ type: ProviderSettingsDto, description: 'Each group given replaces that group; groups not given are kept' })
  @IsOptional() @ValidateNested() @Type(() => ProviderSettingsDto) settings?: ProviderSettingsDto;
}

@ApiSchema({ description: "The signed-in user's provider profile (what their public booking page shows)" })
export class ProviderDto {
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'null until the profile is first saved' }) id: string | null;
  @ApiProperty({ description: 'The name in the public page\'s URL; null when not set', type: String, nullable: true }) publicSlug: string | null;
  @ApiProperty({ description: 'Whether the public booking page is visible under the slug' }) isPublic: boolean;
  @ApiProperty({ description: 'IANA time zone of the profile (Asia/Dubai until set)', example: 'Asia/Dubai' }) timezone: string;
  @ApiProperty({ description: 'The settings groups saved so far; a group not saved is absent', type: ProviderSettingsDto }) settings: Record<string, unknown>;
  @ApiProperty({ description: 'When the profile was first saved; null until then', type: Date, nullable: true }) createdAt: Date | null;
  @ApiProperty({ description: 'When the profile was last saved; null until first saved', type: Date, nullable: true }) updatedAt: Date | null;
}

@ApiSchema({ description: 'The WhatsApp booking details a public page shows' })
export class PublicWhatsappDto {
  @ApiProperty({ description: 'Whether WhatsApp booking is on' }) enabled: boolean;
  @ApiPropertyOptional({ description: 'The provider\'s WhatsApp number in E.164 form; absent when not enabled' }) phoneE164?: string;
}

@ApiSchema({ description: 'A public provider page: name, time zone, working hours, WhatsApp' })
export class PublicProviderDto {
  @ApiProperty({ description: 'The name in the page\'s URL', example: 'kimlindberg' }) slug: string;
  @ApiProperty({ description: 'IANA time zone of the profile', example: 'Asia/Dubai' }) timezone: string;
  @ApiProperty({ description: 'When the provider can be booked; null when not set', type: WorkingHoursDto, nullable: true }) workingHours: WorkingHoursDto | null;
  @ApiProperty({ description: 'WhatsApp booking details; null when not set', type: PublicWhatsappDto, nullable: true }) whatsapp: PublicWhatsappDto | null;
}

export class AvailabilityQueryDto {
  @ApiProperty({ example: '2030-03-09', description: 'First day (in the provider\'s time zone), YYYY-MM-DD; not before yesterday (UTC)' })
  @IsString() @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'from must be a date YYYY-MM-DD' }) from: string;
  @ApiProperty({ example: '2030-03-11', description: `Last day, inclusive: the range covers at most ${MAX_RANGE_DAYS} days, and ends at most ${HORIZON_DAYS} days after today (UTC)` })
  @IsString() @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'to must be a date YYYY-MM-DD' }) to: string;
  @ApiPropertyOptional({ example: '60', description: 'Slot length in minutes, 15-240 (default 60)' })
  @IsOptional() @Matches(/^\d{2,3}$/, { message: 'duration must be a number of minutes' }) duration?: string;
}

@ApiSchema({ description: "An open slot in the provider's local time, with a WhatsApp booking link" })
export class SlotDto {
  @ApiProperty({ description: 'Start of the slot, ISO 8601 in UTC', example: '2030-03-11T13:00:00.000Z' }) start: string;
  @ApiProperty({ description: 'End of the slot, ISO 8601 in UTC', example: '2030-03-11T14:00:00.000Z' }) end: string;
  @ApiProperty({ example: '2030-03-11', description: 'Local date in the provider\'s time zone' }) date: string;
  @ApiProperty({ example: '09:00', description: 'Local start time' }) time: string;
  @ApiPropertyOptional({ description: 'wa.me link with the booking message for this slot; absent when WhatsApp booking is off', example: 'https://wa.me/971500000000?text=Hi!%20Can%20I%20book%202030-03-11%20at%2009%3A00%3F' })
  whatsappUrl?: string;
}

@ApiSchema({ description: "A provider's open slots over a date range" })
export class AvailabilityDto {
  @ApiProperty({ description: 'The provider\'s public slug' }) slug: string;
  @ApiProperty({ description: 'IANA time zone of date and time in the slots: the working hours\' zone, else the profile\'s' }) timezone: string;
  @ApiProperty({ description: 'First day of the range, YYYY-MM-DD, as asked' }) from: string;
  @ApiProperty({ description: 'Last day of the range (inclusive), YYYY-MM-DD, as asked' }) to: string;
  @ApiProperty({ description: 'Length of each slot in minutes' }) durationMinutes: number;
  @ApiProperty({ description: 'The open slots, earliest first; empty when no working hours are set', type: [SlotDto] }) slots: SlotDto[];
}
