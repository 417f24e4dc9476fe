import { applyDecorators } from '@nestjs/common';
import { IsDateString, isISO8601, Matches, ValidateBy } from 'class-validator';

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
 * Whether an ISO 8601 date-time is an instant PostgreSQL's timestamptz reads as written: it starts with a day of the
 * calendar (IsDateString lets 2026-02-30, year 0000 and week dates through) and any offset is within ±15:59.
 */
export function isTimestamp(v: string): boolean {
  const offset = /[+-](\d{2}):?\d{2}$/.exec(v.slice(10));
  return isCalendarDate(v.slice(0, 10)) && (!offset || Number(offset[1]) <= 15);
}

/** A date-time field (ISO 8601, an instant that exists), each refusal a message naming `field`: never a database cast error. */
export const Timestamp = (field: string): PropertyDecorator => applyDecorators(
  IsDateString({}, { message: `${field} must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z` }),
  ValidateBy({
    name: 'isTimestamp',
    validator: {
      validate: (v: unknown) => typeof v !== 'string' || !isISO8601(v) || isTimestamp(v),
      defaultMessage: (a) => `${field} must be an existing instant: ${String(a?.value)} is no day of the calendar or has an offset beyond ±15:59`,
    },
  }),
);
