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

/** https://wa.me/<digits>?text=<template with {date} and {time} filled, URL-encoded> */
export function whatsappUrl(w: WhatsappSettings, date: string, time: string): string | undefined {
  if (!w.enabled || !w.phoneE164 || !w.messageTemplate) return undefined;
  const text = w.messageTemplate.replaceAll('{date}', date).replaceAll('{time}', time);
  return `https://wa.me/${w.phoneE164.replace(/\D/g, '')}?text=${encodeURIComponent(text)}`;
}

/**
 * Open slots between the local days `from` and `to` (inclusive) in the working hours' time zone.
 * Each day's hours are placed on that day's own UTC offset (luxon), so a daylight-saving change
 * moves the UTC times of the slots, never their local times. Slots that overlap a busy interval,
 * or start before `now`, are left out.
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
  const { hours, durationMinutes, busy, now, whatsapp } = input;
  const slots: Slot[] = [];
  for (let day = input.from; day <= input.to; day = day.plus({ days: 1 })) {
    if (!hours.days.includes(day.weekday)) continue;
    const date = day.toISODate()!;
    const open = DateTime.fromISO(`${date}T${hours.start}`, { zone: hours.timezone });
    const close = DateTime.fromISO(`${date}T${hours.end}`, { zone: hours.timezone });
    for (let s = open; s.plus({ minutes: durationMinutes }) <= close; s = s.plus({ minutes: durationMinutes })) {
      const e = s.plus({ minutes: durationMinutes });
      if (s.toJSDate() < now) continue;
      if (busy.some((b) => b.start < e.toJSDate() && b.end > s.toJSDate())) continue;
      const time = s.toFormat('HH:mm');
      const slot: Slot = { start: s.toUTC().toISO()!, end: e.toUTC().toISO()!, date, time };
      const url = whatsapp && whatsappUrl(whatsapp, date, time);
      if (url) slot.whatsappUrl = url;
      slots.push(slot);
    }
  }
  return slots;
}
