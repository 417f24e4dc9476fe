import { applyDecorators } from '@nestjs/common';
import { IsDateString, isISO8601, Matches, ValidateBy } from 'class-validator';

const DATE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/** Whether a YYYY-MM-DD string is a day of the calendar: the pattern lets 2026-02-30 (and year 0000) through. */
export function isCalendarDate(v: string): boolean {
  const d = new Date(`${v}T00:00:00Z`);
  return v >= '0001' && !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v;
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
