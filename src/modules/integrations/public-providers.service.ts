import { Inject, Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import { Clock, today } from '../../platform/clock/clock.js';
import { BodyTooLarge } from '../../platform/http/body-reader.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { DatabaseService, type RequestMeta } from '../../platform/database/database.service.js';
import { outboundFetch } from '../../platform/http/outbound.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { providerRepository as providers, type PublicProviderRow } from './provider.repository.js';
import { integrationRepository } from './integration.repository.js';
import {
  CalDavBusyTimeSource, CalendarUnreadable, errorNames, readCalendars, TooManyBusyTimes, type BusyInterval, type CalDavCredentials,
} from './busy-time-source.js';
import { BusyTimesCache, type BusyTimes } from './busy-times-cache.js';
import type { CalendarIntegrationRow } from './integration.repository.js';
import { HORIZON_DAYS, MAX_RANGE_DAYS, openSlots } from './availability.js';
import { calendarOf, whatsappOf, workingHoursOf } from './provider-settings.js';
import { checkCredentials } from './integrations.service.js';
import { SECRET_BOX, SecretBox, SecretOpenError } from './secret-box.js';
import type { AvailabilityDto, AvailabilityQueryDto, PublicProviderDto } from './provider.dto.js';
import { ProvidersErrors } from './providers.errors.js';

const SLUG = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Public provider pages: anonymous reads through public_provider_profile(), and availability. */
@Injectable()
export class PublicProvidersService {
  private readonly logger = new Logger(PublicProvidersService.name);

  /** for the providers' calendar servers: user-chosen URLs, so no private addresses in production */
  private readonly fetch: typeof fetch;
  /** the checks a secret passed when it was set, made again when it is opened */
  private readonly credentialRules: { httpsOnly: boolean; allowPrivateNetworks: boolean };
  /**
   * busy times of each provider's whole window (yesterday to HORIZON_DAYS ahead) for a minute: anonymous visitors
   * repeating a page's requests, or asking any other range within it, ask no server again
   */
  private readonly cache: BusyTimesCache;

  constructor(
    private readonly db: DatabaseService,
    private readonly privileged: PrivilegedDatabase,
    @Inject(SECRET_BOX) private readonly box: SecretBox,
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly clock: Clock,
  ) {
    this.fetch = outboundFetch(config.outbound.allowPrivateNetworks);
    this.credentialRules = { httpsOnly: config.nodeEnv === 'production', allowPrivateNetworks: config.outbound.allowPrivateNetworks };
    this.cache = new BusyTimesCache(clock);
  }

  /** The same 404 for an unknown and a private slug. */
  private async load(slug: string, meta: RequestMeta): Promise<PublicProviderRow> {
    const row = SLUG.test(slug) && slug.length <= 63 ? await this.db.anonymous(meta, (tx) => providers.publicProfile(tx.db, slug)) : undefined;
    if (!row) throw ProvidersErrors.notFound('provider'); // no echo of the slug: unknown and private answer byte for byte alike
    return row;
  }

  async profile(slug: string, meta: RequestMeta): Promise<PublicProviderDto> {
    const row = await this.load(slug, meta);
    const whatsapp = whatsappOf(row.whatsapp);
    return {
      slug: row.public_slug,
      timezone: row.timezone,
      workingHours: workingHoursOf(row.working_hours) ?? null,
      whatsapp: whatsapp ? { enabled: whatsapp.enabled, phoneE164: whatsapp.enabled ? whatsapp.phoneE164 : undefined } : null,
    };
  }

  async availability(slug: string, q: AvailabilityQueryDto, meta: RequestMeta): Promise<AvailabilityDto> {
    const durationMinutes = q.duration === undefined ? 60 : Number(q.duration);
    if (!Number.isInteger(durationMinutes) || durationMinutes < 15 || durationMinutes > 240) {
      throw ProvidersErrors.error('availability.duration_invalid', 'duration must be between 15 and 240 minutes');
    }
    // calendar dates first, zone-free: bad input never reaches the database
    const fromDay = DateTime.fromISO(q.from, { zone: 'utc' });
    const toDay = DateTime.fromISO(q.to, { zone: 'utc' });
    if (!fromDay.isValid) throw ProvidersErrors.error('availability.from_invalid', `from "${q.from}" is not a calendar date`);
    if (!toDay.isValid) throw ProvidersErrors.error('availability.to_invalid', `to "${q.to}" is not a calendar date`);
    if (toDay < fromDay) throw ProvidersErrors.error('availability.range_invalid', 'to must not be before from');
    if (toDay.diff(fromDay, 'days').days >= MAX_RANGE_DAYS) {
      throw ProvidersErrors.error('availability.range_too_long', `the range may cover at most ${MAX_RANGE_DAYS} days`);
    }
    // only near today (UTC: the provider's zone is not known yet, and is at most a day off): what is read is one window
    // a provider, whatever range a visitor chooses
    const window = windowOf(this.clock);
    if (q.from < window.from) throw ProvidersErrors.error('availability.from_past', `from must not be before ${window.from} (yesterday, UTC)`);
    if (q.to > window.to) throw ProvidersErrors.error('availability.to_beyond_horizon', `to must not be after ${window.to} (${HORIZON_DAYS} days after today, UTC)`);
    const row = await this.load(slug, meta);
    const hours = workingHoursOf(row.working_hours);
    const zone = hours?.timezone ?? row.timezone;
    const from = DateTime.fromISO(q.from, { zone });
    const to = DateTime.fromISO(q.to, { zone });
    const result: AvailabilityDto = { slug: row.public_slug, timezone: zone, from: q.from, to: q.to, durationMinutes, slots: [] };
    if (!hours) return result;
    const range = { start: from.toUTC().toJSDate(), end: to.plus({ days: 1 }).toUTC().toJSDate() };
    const read = { start: DateTime.fromISO(window.from, { zone }).toUTC().toJSDate(), end: DateTime.fromISO(window.to, { zone }).plus({ days: 1 }).toUTC().toJSDate() };
    const busy = await this.busyTimes(slug, zone, read, range);
    const now = new Date(this.clock.now());
    result.slots = openSlots({ hours, from, to, durationMinutes, busy, now, whatsapp: whatsappOf(row.whatsapp) });
    return result;
  }

  /**
   * Busy times of the provider's connected calendars; the credentials are opened here and nowhere else. All calendars
   * are read together, each with every integration that may ask it (readCalendars: at most 50 selected calendars an
   * integration, and a bounded number of events and answer bytes for the whole request, a few at a time, one deadline).
   * The provider's whole window (`read`: the same for every range a visitor may ask today) is read, and the busy times
   * within `range` answered. What was read is kept for a minute, that it could not be for 10 s (BusyTimesCache), under
   * everything it depends on: at most one read a provider at a time, and one a minute while its settings stay.
   */
  private async busyTimes(slug: string, zone: string, read: { start: Date; end: Date }, range: { start: Date; end: Date }): Promise<BusyInterval[]> {
    const rows = await this.privileged.run('integrations.busy_times', (db) => integrationRepository.calendarIntegrationsOfPublicProvider(db, slug));
    const group = rows[0]?.calendar;
    if (group === undefined || group === null) return [];
    const key = createHash('sha256').update(JSON.stringify([
      slug, zone, read.start.toISOString(), read.end.toISOString(), group,
      rows.map((r) => [r.integration_id, r.integration_type, r.user_id, r.secret]),
    ])).digest('base64');
    const busy = await this.cache.get(key, () => this.readBusyTimes(rows, group, zone, read), range);
    // better no slots than double bookings
    if (!busy) throw ProvidersErrors.error('availability.calendar_unavailable', 'the provider\'s calendar could not be read; try again later');
    return busy;
  }

  /** The calendars' busy times, or undefined (logged) when they cannot be read. */
  private async readBusyTimes(rows: CalendarIntegrationRow[], group: unknown, zone: string, range: { start: Date; end: Date }): Promise<BusyTimes> {
    try {
      // settings the API would not have saved (written over REST): unreadable rather than ignored, no double bookings
      const selected = calendarOf(group);
      if (!selected) throw new CalendarUnreadable('the calendar settings are malformed');
      if (!selected.selectedCalendarIds.length) return [];
      const reads = rows.flatMap((row) => {
        const opened = this.box.open<Record<string, unknown>>(row.secret, { integrationId: row.integration_id, userId: row.user_id });
        const credentials = checkCredentials(row.integration_type, opened, this.credentialRules, (message) => new CalendarUnreadable(`stored credentials: ${message}`));
        const source = new CalDavBusyTimeSource(credentials as unknown as CalDavCredentials, selected.selectedCalendarIds, zone, this.fetch);
        return source.calendars().map((url) => ({ source, url }));
      });
      return await readCalendars(reads, range);
    } catch (err) {
      // the log names the integrations, never a credential: the messages of this module's errors (calendars by origin
      // and path), of any other only its name (an HTTP client's message may quote a URL as given, password included)
      const ours = [TooManyBusyTimes, BodyTooLarge, CalendarUnreadable, SecretOpenError].some((type) => err instanceof type);
      this.logger.warn({ integrationIds: rows.map((r) => r.integration_id), reason: ours ? (err as Error).message : errorNames(err) }, 'calendar busy times unavailable');
      return undefined;
    }
  }
}

/** The days availability may be asked for, YYYY-MM-DD in UTC on the clock: yesterday to HORIZON_DAYS after today. */
function windowOf(clock: Clock): { from: string; to: string } {
  const day = DateTime.fromISO(today(clock), { zone: 'utc' });
  return { from: day.minus({ days: 1 }).toISODate()!, to: day.plus({ days: HORIZON_DAYS }).toISODate()! };
}
