import { applyDecorators } from '@nestjs/common';
import { DECORATORS } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { Matches, ValidateBy } from 'class-validator';
import { PlatformErrors } from '../errors/platform.errors.js';

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/**
 * Whether `written` (UTC, `length` characters of Date.toISOString's form: 10 a day, 19 to the second) is the start of
 * an instant that exists as written, from year 1 (PostgreSQL has no year 0): no rollover such as 2020-02-30 or 24:00.
 */
function existsAsWritten(written: string, length: 10 | 19): boolean {
  const d = new Date(`${written.slice(0, length)}${length === 10 ? 'T00:00:00' : ''}Z`);
  return written >= '0001' && !Number.isNaN(d.getTime()) && d.toISOString().slice(0, length) === written.slice(0, length);
}

const DAY_DIGITS = /^\d{4}-\d{2}-\d{2}$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Whether a string is a YYYY-MM-DD day of the calendar: the pattern lets 2026-02-30 (and year 0000) through. The day
 * existsAsWritten would find (the proleptic Gregorian calendar of Date, from year 1), counted out instead of parsed
 * and formatted back: it is checked for every entry of a batch.
 */
export function isCalendarDate(v: string): boolean {
  if (v.length !== 10 || !DAY_DIGITS.test(v)) return false;
  const year = Number(v.slice(0, 4));
  const month = Number(v.slice(5, 7));
  const day = Number(v.slice(8, 10));
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]);
}

const UTC_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/**
 * Whether a string is a UTC instant as the API writes one (exactInstant: microseconds; Date.toISOString: milliseconds)
 * that exists as written. Date.parse alone is too lenient: it takes "1", "2020-02-30" and offsets PostgreSQL refuses
 * ("+23:00").
 */
export function isUtcInstant(v: string): boolean {
  return UTC_INSTANT.test(v) && existsAsWritten(v, 19);
}

/**
 * A date field: YYYY-MM-DD and a real calendar day, each refused with a message naming `field` (bad input is a 400,
 * never a database cast error). The calendar check leaves a malformed value to the pattern's message.
 */
export const CalendarDate = (field: string): PropertyDecorator => applyDecorators(
  Matches(DATE, { message: `${field} must be a date YYYY-MM-DD` }),
  ValidateBy({
    name: 'isCalendarDate',
    validator: {
      validate: (v: unknown) => typeof v !== 'string' || !DATE.test(v) || isCalendarDate(v),
      defaultMessage: (a) => `${field} must be a calendar date YYYY-MM-DD: ${String(a?.value)} is no day of the calendar`,
    },
  }),
);

/** The calendar day `days` after (or before, when negative) a YYYY-MM-DD day. */
export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/**
 * addDays for a day the API stores and answers back (a computed due date): one past 9999-12-31 (or before 0001-01-01)
 * is no date of the API, refused as a 400 naming `field` (the field that, given, would stand in for it), never a
 * database error nor a comparison of "+010000-01-19" with a YYYY-MM-DD day. Other callers of addDays shift days within
 * a range the caller bounds (reports), where the rollover never reaches the database.
 */
export function addDaysWithin(date: string, days: number, field: string): string {
  const day = addDays(date, days);
  if (isCalendarDate(day)) return day;
  const problem = `${field}: ${date} plus ${days} days is ${days < 0 ? 'before 0001-01-01, the first' : 'after 9999-12-31, the last'} day a date can be; give ${field}`;
  throw PlatformErrors.error('validation_failed', problem, [{ field, problems: [problem] }]);
}

/**
 * The date-times the API takes: a day, a time to the minute (seconds and a fraction optional) and an offset, Z or
 * ±HH:MM; RFC 3339's date-time (which OpenAPI's format date-time names), whose T and Z may be written t and z and
 * whose T may be a space (its section 5.6 note), with seconds optional, no leap second and offsets within PostgreSQL's
 * ±15:59. What JavaScript (Date.parse) and PostgreSQL (timestamptz) both read, as the same instant, once written with
 * T and Z and the fraction cut to milliseconds (normalizeTimestamp): ISO 8601 and IsDateString allow more
 * (2030-12-31T10Z, T1000Z, a comma fraction, a -00 offset, a compact offset +0100) that Date.parse cannot read (an
 * Invalid Date, written as "0NaN-NaN-..."), and a time without an offset JavaScript reads in the process's time zone but
 * PostgreSQL in the session's. The pattern checks every field's range (year 0001-9999, month 01-12, day 01-31, hour
 * 00-23, minute and second 00-59, offset hour 00-15); isTimestamp adds what a pattern cannot: the day exists in its month
 * and the instant, in UTC, lies within 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z (TIMESTAMP_DESCRIPTION says both).
 */
const TIMESTAMP = new RegExp('^(?:000[1-9]|00[1-9]\\d|0[1-9]\\d{2}|[1-9]\\d{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])'
  + '[Tt ](?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?(?:[Zz]|[+-](?:0\\d|1[0-5]):[0-5]\\d)$');
const TIMESTAMP_FORMAT = 'YYYY-MM-DDTHH:MM[:SS[.fraction]] followed by Z or an offset ±HH:MM, e.g. 2026-01-31T12:00:00Z or 2026-01-31T13:00:00.5+01:00 '
  + '(t, z and a space for the T taken too; a fraction of up to 9 digits, an offset up to ±15:59)';
/** The first and the last instant the API takes (and can write back as YYYY-MM-DDTHH:MM:SS.sssZ): years 1 to 9999 in UTC. */
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');
/** What a date-time field's description says of it in the OpenAPI document (Timestamp), beside TIMESTAMP as its pattern. */
const TIMESTAMP_DESCRIPTION = 'A date-time: YYYY-MM-DD, T, HH:MM, optionally :SS and then optionally a fraction of 1 to 9 digits, then Z or an offset '
  + '±HH:MM from -15:59 to +15:59, e.g. 2026-01-31T12:00:00Z, 2026-01-31T12:00Z or 2026-01-31T13:00:00.5+01:00; t and z are taken for T and Z, '
  + 'and a space for the T. That is RFC 3339\'s date-time with the seconds optional, no leap second (:60) and offsets up to ±15:59. '
  + 'The time is kept to the millisecond: fraction digits past the third are dropped (2026-01-31T12:00:00.9999Z is 12:00:00.999). '
  + 'Two rules the pattern cannot state are refused with a 400 too: a day its month does not have (2026-02-30), and an instant '
  + 'outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999Z once its offset is applied (9999-12-31T23:00:00-02:00). '
  + 'A date-time without an offset, a day alone and an offset without its colon (+0100) are refused.';

/** `v`'s fraction of a second cut to milliseconds (what Date.parse reads of it; PostgreSQL would round it to microseconds). */
const toMilliseconds = (v: string): string => v.replace(/(\.\d{3})\d+/, '$1');

/**
 * `v` written with an upper-case T and Z (RFC 3339 lets a client write t, z, or a space for the T) and its fraction cut
 * to milliseconds: the one form Date.parse and PostgreSQL read as the same instant (of 2030-12-31T23:59:59.9999995Z
 * Date.parse reads 23:59:59.999, PostgreSQL 2031-01-01 00:00:00). Each Timestamp field reaches the services and SQL so.
 * Anything not of TIMESTAMP's form is left as it is (Timestamp refuses it).
 */
export function normalizeTimestamp(v: unknown): unknown {
  return typeof v === 'string' && TIMESTAMP.test(v) ? toMilliseconds(`${v.slice(0, 10)}T${v.slice(11)}`.toUpperCase()) : v;
}

/**
 * Why a date-time of TIMESTAMP's form is no instant the API takes (undefined: it is one): its day is no day of the
 * calendar (2026-02-30), or the instant it names, in UTC, falls outside years 1 to 9999 (0001-01-01T00:00:00+01:00 is in
 * year 0, 9999-12-31T23:59:59-15:59 in 10000: no date-time the API could answer back).
 */
function timestampProblem(v: string): string | undefined {
  if (!isCalendarDate(v.slice(0, 10))) return `${v.slice(0, 10)} is no day of the calendar`;
  const at = Date.parse(normalizeTimestamp(v) as string);
  if (Number.isNaN(at)) return `${v} is no instant`;
  if (at < FIRST_INSTANT || at > LAST_INSTANT) return `${v} is ${new Date(at).toISOString()} in UTC`;
  return undefined;
}

/**
 * Whether a string is a date-time of TIMESTAMP's form that is an instant both JavaScript and PostgreSQL read as written
 * with T and Z and to the millisecond (normalizeTimestamp): its day is a day of the calendar (2026-02-30 is not) and the
 * instant lies within years 1 to 9999 in UTC.
 */
export function isTimestamp(v: string): boolean {
  return TIMESTAMP.test(v) && timestampProblem(v) === undefined;
}

/**
 * The OpenAPI side of Timestamp: TIMESTAMP as the property's pattern and TIMESTAMP_DESCRIPTION after its description.
 * It completes what the property's ApiProperty wrote, so it must stand above it (decorators run bottom up; below it, that
 * ApiProperty's description would replace this one): anywhere else the class fails to load, naming the property.
 */
const TimestampSchema = (field: string): PropertyDecorator => (target, key) => {
  const existing = Reflect.getMetadata(DECORATORS.API_MODEL_PROPERTIES, target, key) as { description?: string } | undefined;
  if (!existing) throw new Error(`@Timestamp('${field}') of ${target.constructor.name}.${String(key)} must stand above its @ApiProperty/@ApiPropertyOptional`);
  const before = existing.description?.trim();
  Reflect.defineMetadata(DECORATORS.API_MODEL_PROPERTIES, {
    ...existing, format: 'date-time', pattern: TIMESTAMP.source,
    description: before ? `${before}${/[.!?]$/.test(before) ? '' : '.'} ${TIMESTAMP_DESCRIPTION}` : TIMESTAMP_DESCRIPTION,
  }, target, key);
};

/**
 * A date-time field (TIMESTAMP's form, an instant that exists), each refusal a 400 naming `field`: never a database cast
 * error. The value is handed on written with T and Z and to the millisecond (normalizeTimestamp), and the OpenAPI document says exactly what is
 * taken (TimestampSchema: written above the property's ApiProperty).
 */
export const Timestamp = (field: string): PropertyDecorator => applyDecorators(
  TimestampSchema(field),
  Transform(({ value }) => normalizeTimestamp(value)),
  Matches(TIMESTAMP, { message: `${field} must be a date-time ${TIMESTAMP_FORMAT}` }),
  ValidateBy({
    name: 'isTimestamp',
    validator: {
      validate: (v: unknown) => typeof v !== 'string' || !TIMESTAMP.test(v) || isTimestamp(v),
      defaultMessage: (a) => `${field} must be an instant on a day of the calendar, from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z: `
        + (timestampProblem(String(a?.value)) ?? String(a?.value)),
    },
  }),
);
