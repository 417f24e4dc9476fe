import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import type { WhatsappSettings, WorkingHours } from './availability.js';
import { CalendarSettingsDto, WhatsappDto, WorkingHoursDto } from './provider.dto.js';

/**
 * Settings as stored are read through these: the owner may write public.providers over REST (seed 004), and rows
 * written before the database checked the settings (20270210360100) may hold anything. A group that does not have
 * the shape the API would have accepted counts as not set, so no reader gets a shape its schema does not promise.
 */
const OPTIONS = { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true };

function valid<T extends object>(cls: new () => T, v: unknown): boolean {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  return validateSync(plainToInstance(cls, v), OPTIONS).length === 0;
}

export function workingHoursOf(v: unknown): WorkingHours | undefined {
  return valid(WorkingHoursDto, v) && (v as WorkingHours).start < (v as WorkingHours).end ? (v as WorkingHours) : undefined;
}

export function whatsappOf(v: unknown): WhatsappSettings | undefined {
  return valid(WhatsappDto, v) ? (v as WhatsappSettings) : undefined;
}

export function calendarOf(v: unknown): { selectedCalendarIds: string[] } | undefined {
  return valid(CalendarSettingsDto, v) ? (v as { selectedCalendarIds: string[] }) : undefined;
}

/** The well-formed groups of stored settings; the others (and any other key) left out. */
export function settingsOf(raw: unknown): Record<string, unknown> {
  const s = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  const workingHours = workingHoursOf(s.workingHours);
  const whatsapp = whatsappOf(s.whatsapp);
  const calendar = calendarOf(s.calendar);
  if (workingHours) out.workingHours = workingHours;
  if (whatsapp) out.whatsapp = whatsapp;
  if (calendar) out.calendar = calendar;
  return out;
}
