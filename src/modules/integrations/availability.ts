import { DateTime } from 'luxon';
import type { BusyInterval } from './busy-time-source.js';

export interface WorkingHours {
  timezone: string;
  days: number[];
  start: string;
  end: string;
}

export interface WhatsappSettings {
  enabled: boolean;
  phoneE164?: string;
  messageTemplate?: string;
}

export interface Slot {
  start: string;
  end: string;
  date: string;
  time: string;
  whatsappUrl?: string;
}

export const MAX_RANGE_DAYS = 31;
/**
 * How far ahead a public page's availability may be asked, in days after today (UTC, on the injected clock); `from`
 * may be yesterday at the earliest (a provider's zone may be a day behind UTC). The calendars are read once for this
 * whole window per provider (and cached), so a visitor choosing ranges chooses no read.
 */
export const HORIZON_DAYS = 92;

/** https://wa.me/<digits>?text=<template with {date} and {time} filled, URL-encoded> */
export function whatsappUrl(w: WhatsappSettings, date: string, time: string): string | undefined {
  if (!w.enabled || !w.phoneE164 || !w.messageTemplate) return undefined;
  const text = w.messageTemplate.replaceAll('{date}', date).replaceAll('{time}', time);
  return `https://wa.me/${w.phoneE164.replace(/\D/g, '')}?text=${encodeURIComponent(text)}`;
}

/**
 * Busy intervals as sorted, disjoint [start, end) pairs in epoch milliseconds: overlapping or touching ones merged.
 * A slot then overlaps a busy time exactly when the first merged interval ending after the slot's start begins
 * before its end.
 */
function mergeBusy(busy: BusyInterval[]): { starts: number[]; ends: number[] } {
  const sorted = busy.map((b) => [b.start.getTime(), b.end.getTime()] as const)
    .filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const starts: number[] = [];
  const ends: number[] = [];
  for (const [s, e] of sorted) {
    const last = ends.length - 1;
    if (last >= 0 && s <= ends[last]) ends[last] = Math.max(ends[last], e);
    else { starts.push(s); ends.push(e); }
  }
  return { starts, ends };
}

/** Whether [start, end) overlaps one of the merged intervals (a binary search over their ends). */
function overlapsBusy(merged: { starts: number[]; ends: number[] }, start: number, end: number): boolean {
  let lo = 0;
  let hi = merged.ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (merged.ends[mid] > start) hi = mid;
    else lo = mid + 1;
  }
  return lo < merged.starts.length && merged.starts[lo] < end;
}

/**
 * Open slots between the local days `from` and `to` (inclusive) in the working hours' time zone.
 * Each day's hours are placed on that day's own UTC offset (luxon), so a daylight-saving change
 * moves the UTC times of the slots, never their local times. Slots that overlap a busy interval,
 * or start before `now`, are left out. The busy intervals are merged once, and each slot looks its
 * overlap up in O(log n): a calendar server may answer tens of thousands of events.
 */
export function openSlots(input: {
  hours: WorkingHours;
  from: DateTime; // local start of the first day
  to: DateTime; // local start of the last day
  durationMinutes: number;
  busy: BusyInterval[];
  now: Date;
  whatsapp?: WhatsappSettings;
}): Slot[] {
  const { hours, durationMinutes, now, whatsapp } = input;
  const merged = mergeBusy(input.busy);
  const nowMs = now.getTime();
  const slots: Slot[] = [];
  for (let day = input.from; day <= input.to; day = day.plus({ days: 1 })) {
    if (!hours.days.includes(day.weekday)) continue;
    const date = day.toISODate()!;
    const open = DateTime.fromISO(`${date}T${hours.start}`, { zone: hours.timezone });
    const close = DateTime.fromISO(`${date}T${hours.end}`, { zone: hours.timezone });
    for (let s = open, e = s.plus({ minutes: durationMinutes }); e <= close; s = e, e = s.plus({ minutes: durationMinutes })) {
      const startMs = s.toMillis();
      const endMs = e.toMillis();
      if (startMs < nowMs || overlapsBusy(merged, startMs, endMs)) continue;
      const time = s.toFormat('HH:mm');
      const slot: Slot = { start: new Date(startMs).toISOString(), end: new Date(endMs).toISOString(), date, time };
      const url = whatsapp && whatsappUrl(whatsapp, date, time);
      if (url) slot.whatsappUrl = url;
      slots.push(slot);
    }
  }
  return slots;
}
