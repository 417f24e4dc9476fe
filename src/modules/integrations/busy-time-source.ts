import { DateTime, Duration } from 'luxon';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BodyTooLarge, readBodyAtMost } from '../../platform/http/body-reader.js';
import { CALDAV_TYPES } from './integration.repository.js';

/** A busy interval, in UTC. */
export interface BusyInterval {
  start: Date;
  end: Date;
}

/** Where busy times come from (a connected calendar). Availability only knows this interface. */
export interface BusyTimeSource {
  busyTimes(range: { start: Date; end: Date }): Promise<BusyInterval[]>;
}

/** CalDAV credentials as stored (sealed) in integration_secrets. */
export interface CalDavCredentials {
  username: string;
  password: string;
  /** defaults to iCloud's server */
  serverUrl?: string;
}

export const ICLOUD_CALDAV_URL = 'https://caldav.icloud.com';
const ICLOUD_HOST = /^(p\d+-)?caldav\.icloud\.com$/;

/**
 * The most of one REPORT answer that is read (decompressed: a gzip'd answer counts as what it inflates to): the server
 * is one a user chose, and anonymous visitors of a public provider page make the API ask it. A month of a busy
 * calendar, recurrences expanded, is far less...
 */
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;
/**
 * ...and the most of all the answers one request reads together (every calendar of every integration, decompressed),
 * counted as they stream: past it the answer being read is given up, and no other calendar is asked.
 */
export const MAX_REQUEST_REPORT_BYTES = 8 * 1024 * 1024;

/** The most calendars a provider selects, as the API's settings allow (CalendarSettingsDto). */
export const MAX_CALENDARS = 50;
/**
 * The most CalDAV integrations one availability request reads with: a user has one of each CALDAV_TYPES
 * (integrations_user_type_uq). Each reads the selected calendars it may ask, so two on the same server (iCloud, and
 * CalDAV at caldav.icloud.com) both ask each of them: a request asks at most MAX_CALENDARS times this many.
 */
export const MAX_CALENDAR_SOURCES = CALDAV_TYPES.length;
/** The most events one calendar's answer may hold for a range (a month of a busy calendar is far less)... */
export const MAX_EVENTS_PER_CALENDAR = 10_000;
/**
 * ...and all calendars one request reads together, with every integration (a calendar two integrations ask counts
 * twice). Beyond either, or beyond MAX_REQUEST_REPORT_BYTES, the calendars count as unavailable.
 */
export const MAX_EVENTS = 20_000;
/** How many events are read between two turns given back to the event loop (other requests run in between). */
export const EVENTS_PER_TURN = 500;
/** How many calendars are asked at once, each within its own timeout and all within one deadline. */
export const CALENDAR_CONCURRENCY = 4;
export const CALENDAR_TIMEOUT_MS = 10_000;
export const BUSY_TIMES_DEADLINE_MS = 15_000;

/** More calendars, events or bytes than one request reads. */
export class TooManyBusyTimes extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TooManyBusyTimes';
  }
}

/**
 * A calendar could not be read (an answer's status, a request that failed, settings or credentials that cannot be
 * used). Its message names the calendar by origin and path and the error by name: never a URL as given, whose user
 * part could hold a password, nor a message of the HTTP client, which may quote it.
 */
export class CalendarUnreadable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CalendarUnreadable';
  }
}

/** An error's name (its class's when it has none of its own), and its cause's: what may be logged of an error from elsewhere. */
export function errorNames(err: unknown): string {
  // not instanceof: the HTTP client's errors may come from another realm (a VM context's Error is another class)
  const field = (e: unknown, key: string): unknown => (e !== null && typeof e === 'object' ? (e as Record<string, unknown>)[key] : undefined);
  const name = (e: unknown) => {
    const own = field(e, 'name');
    const ctor = (field(e, 'constructor') as { name?: unknown } | undefined)?.name;
    return typeof own === 'string' && own !== 'Error' ? own : typeof ctor === 'string' && ctor ? ctor : typeof e;
  };
  const cause = field(err, 'cause');
  const code = field(cause, 'code');
  return cause === undefined ? name(err) : `${name(err)} (${name(cause)}${typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? ` ${code}` : ''})`;
}

/** How many more events may be read (busyFromIcs). */
export interface EventBudget {
  left: number;
}

/** What one request may still read, all its calendars together: decompressed answer bytes and events. */
export interface RequestBudget {
  bytes: number;
  events: number;
}

export const requestBudget = (): RequestBudget => ({ bytes: MAX_REQUEST_REPORT_BYTES, events: MAX_EVENTS });

const icsUtc = (d: Date) => DateTime.fromJSDate(d, { zone: 'utc' }).toFormat("yyyyMMdd'T'HHmmss'Z'");

/** One calendar to ask, on the source allowed to ask it. */
export interface CalendarRead {
  source: CalDavBusyTimeSource;
  url: URL;
}

/**
 * Busy times of several calendars, read with up to MAX_CALENDAR_SOURCES integrations (sources): at most MAX_CALENDARS
 * a source, MAX_EVENTS events and MAX_REQUEST_REPORT_BYTES of answers all together (`budget`), CALENDAR_CONCURRENCY at
 * a time, and everything within `deadline`. The event loop is given back between calendars and every EVENTS_PER_TURN
 * events. The first failure stops the calendars still being read and is thrown.
 */
export async function readCalendars(
  reads: CalendarRead[], range: { start: Date; end: Date }, deadline: AbortSignal = AbortSignal.timeout(BUSY_TIMES_DEADLINE_MS),
  budget: RequestBudget = requestBudget(),
): Promise<BusyInterval[]> {
  const calendars = new Map<CalDavBusyTimeSource, number>();
  for (const { source } of reads) calendars.set(source, (calendars.get(source) ?? 0) + 1);
  if (calendars.size > MAX_CALENDAR_SOURCES) {
    throw new TooManyBusyTimes(`${calendars.size} calendar integrations are read, more than the ${MAX_CALENDAR_SOURCES} a provider has`);
  }
  for (const n of calendars.values()) {
    if (n > MAX_CALENDARS) throw new TooManyBusyTimes(`${n} calendars are read with one integration, more than the ${MAX_CALENDARS} selected at most`);
  }
  const stop = new AbortController();
  const signal = AbortSignal.any([deadline, stop.signal]);
  const out: BusyInterval[] = [];
  let next = 0;
  const worker = async () => {
    while (next < reads.length && !signal.aborted) {
      const { source, url } = reads[next++];
      for (const b of await source.read(url, range, signal, budget)) out.push(b);
      await nextTurn(); // between two calendars, other requests' turn
    }
    signal.throwIfAborted();
  };
  try {
    await Promise.all(Array.from({ length: Math.min(CALENDAR_CONCURRENCY, reads.length) }, worker));
  } catch (err) {
    stop.abort();
    throw err;
  }
  return out.filter((b) => b.end > range.start && b.start < range.end);
}

/**
 * Busy times from CalDAV calendars (as iCloud serves them): one REPORT calendar-query with a
 * time-range per selected calendar, asking the server to expand recurrences, then the VEVENTs'
 * DTSTART/DTEND. Calendars on another origin than the credentials' server are never asked, so
 * the credentials cannot be sent elsewhere.
 */
export class CalDavBusyTimeSource implements BusyTimeSource {
  private readonly origin: string;

  constructor(
    private readonly credentials: CalDavCredentials,
    private readonly calendarUrls: string[],
    /** zone for floating times and all-day events (the provider's) */
    private readonly zone: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.origin = new URL(this.credentials.serverUrl ?? ICLOUD_CALDAV_URL).origin;
  }

  /** The credentials' server only; for iCloud also its partition hosts (pNN-caldav.icloud.com), over https. */
  private mayAsk(url: URL): boolean {
    if (url.origin === this.origin) return true;
    return !this.credentials.serverUrl && url.protocol === 'https:' && url.port === '' && ICLOUD_HOST.test(url.hostname);
  }

  /** The selected calendars this source may ask; TooManyBusyTimes when more than MAX_CALENDARS are selected. */
  calendars(): URL[] {
    if (this.calendarUrls.length > MAX_CALENDARS) {
      throw new TooManyBusyTimes(`${this.calendarUrls.length} calendars are selected, more than the ${MAX_CALENDARS} read`);
    }
    const out: URL[] = [];
    for (const calendar of this.calendarUrls) {
      let url: URL;
      try {
        url = new URL(calendar, this.origin);
      } catch {
        continue; // not a URL: nothing to ask
      }
      if (this.mayAsk(url)) out.push(url);
    }
    return out;
  }

  async busyTimes(range: { start: Date; end: Date }): Promise<BusyInterval[]> {
    return readCalendars(this.calendars().map((url) => ({ source: this, url })), range);
  }

  /**
   * One calendar's busy times: at most MAX_REPORT_BYTES of its answer and MAX_EVENTS_PER_CALENDAR events, both also
   * taken from what the request may still read (`budget`, shared with the calendars read at the same time).
   */
  async read(url: URL, range: { start: Date; end: Date }, signal: AbortSignal, budget: RequestBudget): Promise<BusyInterval[]> {
    const auth = 'Basic ' + Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64');
    const body = `<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data><C:expand start="${icsUtc(range.start)}" end="${icsUtc(range.end)}"/></C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="${icsUtc(range.start)}" end="${icsUtc(range.end)}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>`;
    const calendar = `${url.origin}${url.pathname}`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method: 'REPORT',
        headers: { Authorization: auth, Depth: '1', 'Content-Type': 'application/xml; charset=utf-8' },
        body,
        signal: AbortSignal.any([signal, AbortSignal.timeout(CALENDAR_TIMEOUT_MS)]),
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // the client's message may quote the URL as given (user part included): its name only
      throw new CalendarUnreadable(`CalDAV REPORT on ${calendar} failed: ${errorNames(err)}`);
    }
    // the status only: a server's error page could echo what it was sent
    if (res.status !== 207 && res.status !== 200) {
      void res.body?.cancel().catch(() => undefined);
      throw new CalendarUnreadable(`CalDAV REPORT on ${url.pathname} answered ${res.status}`);
    }
    const multistatus = await readReport(res, url, calendar, signal, budget);
    const mine: EventBudget = { left: MAX_EVENTS_PER_CALENDAR };
    const take = () => {
      if (--mine.left < 0) throw new TooManyBusyTimes(`CalDAV REPORT on ${url.pathname} answered more than the ${MAX_EVENTS_PER_CALENDAR} events read`);
      if (--budget.events < 0) {
        throw new TooManyBusyTimes(`CalDAV REPORT on ${url.pathname} answered more events than the ${MAX_EVENTS} read for all calendars of a request together`);
      }
    };
    const out: BusyInterval[] = [];
    let sinceTurn = 0;
    for (const ics of calendarDataOf(multistatus)) {
      for (const b of icsIntervals(ics, this.zone, take)) {
        if (b) out.push(b);
        if (++sinceTurn === EVENTS_PER_TURN) {
          sinceTurn = 0;
          await nextTurn(); // other requests' turn; the deadline may have passed meanwhile
          signal.throwIfAborted();
        }
      }
    }
    return out;
  }
}

/**
 * A REPORT answer as text, read as it streams (decompressed) and never past MAX_REPORT_BYTES nor what the request may
 * still read (`budget.bytes`, taken as each chunk arrives): past either the rest is never downloaded (the connection
 * is closed) nor inflated. One whose Content-Length is already past either is not read at all.
 */
async function readReport(res: Response, url: URL, calendar: string, signal: AbortSignal, budget: RequestBudget): Promise<string> {
  const what = `CalDAV REPORT on ${url.pathname}`;
  const overBudget = () => new TooManyBusyTimes(`${what} answered more than the ${MAX_REQUEST_REPORT_BYTES} bytes read for all calendars of a request together`);
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared <= MAX_REPORT_BYTES && declared > budget.bytes) {
    void res.body?.cancel().catch(() => undefined);
    throw overBudget();
  }
  try {
    return await readBodyAtMost(res, MAX_REPORT_BYTES, {
      over: 'fail', what,
      take: (bytes) => {
        budget.bytes -= bytes;
        if (budget.bytes < 0) throw overBudget();
      },
    });
  } catch (err) {
    if (err instanceof BodyTooLarge || err instanceof TooManyBusyTimes) throw err;
    if (signal.aborted) throw signal.reason;
    throw new CalendarUnreadable(`CalDAV REPORT on ${calendar} failed while its answer was read: ${errorNames(err)}`);
  }
}

/** The contents of the CDATA sections in place of the sections, in one pass (an unclosed one stays as it is). */
function unwrapCdata(s: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const open = s.indexOf('<![CDATA[', at);
    const close = open < 0 ? -1 : s.indexOf(']]>', open + 9);
    if (close < 0) return out + s.slice(at);
    out += s.slice(at, open) + s.slice(open + 9, close);
    at = close + 3;
  }
}

const decodeXml = (s: string) =>
  unwrapCdata(s)
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/**
 * The calendar-data texts of a multistatus response, whatever namespace prefix the server uses. One pass: each
 * element's end is looked for once, after its start (a lazy `[\s\S]*?` between them would scan to the end of the
 * answer again for every start tag left unclosed, quadratic in what the server sends).
 */
export function calendarDataOf(multistatus: string): string[] {
  const start = /<(?:[A-Za-z0-9_-]+:)?calendar-data\b/g;
  const end = /<\/(?:[A-Za-z0-9_-]+:)?calendar-data>/g;
  const out: string[] = [];
  for (let m = start.exec(multistatus); m; m = start.exec(multistatus)) {
    const contentAt = multistatus.indexOf('>', start.lastIndex) + 1;
    if (contentAt === 0) break; // no tag is closed any more
    end.lastIndex = contentAt;
    const close = end.exec(multistatus);
    if (!close) break; // no element ends any more
    out.push(decodeXml(multistatus.slice(contentAt, close.index)));
    start.lastIndex = end.lastIndex;
  }
  return out;
}

/** DTSTART/DTEND forms: UTC (...Z), TZID=zone, floating (the provider's zone), and all-day VALUE=DATE. */
function parseIcsTime(params: string, value: string, zone: string): { at: DateTime; allDay: boolean } | undefined {
  const tzid = /(?:^|;)TZID=("?)([^;:"]+)\1/i.exec(params)?.[2];
  // fromObject, not fromFormat: the same reading (an impossible date or time is invalid), without a format parser per value
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$/.exec(value);
  if (!m) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (m[4] === undefined) return { at: DateTime.fromObject({ year, month, day }, { zone: tzid ?? zone }), allDay: true };
  const at = DateTime.fromObject({ year, month, day, hour: Number(m[4]), minute: Number(m[5]), second: Number(m[6]) }, { zone: m[7] ? 'utc' : tzid ?? zone });
  return at.isValid ? { at, allDay: false } : undefined;
}

/** The busy intervals of an iCalendar text; each VEVENT takes one from `budget` (TooManyBusyTimes when none is left). */
export function busyFromIcs(ics: string, zone: string, budget: EventBudget = { left: Infinity }): BusyInterval[] {
  const out: BusyInterval[] = [];
  const take = () => {
    if (--budget.left < 0) throw new TooManyBusyTimes('more events than are read');
  };
  for (const b of icsIntervals(ics, zone, take)) if (b) out.push(b);
  return out;
}

/**
 * The VEVENTs of an iCalendar text, one at a time: each one's busy interval, or undefined for an event that blocks
 * nothing (so a reader can give the event loop back between them). `take` is called at each BEGIN:VEVENT and throws
 * when no more events may be read.
 */
function* icsIntervals(ics: string, zone: string, take: () => void): Generator<BusyInterval | undefined> {
  const lines = ics.replace(/\r?\n[ \t]/g, '').split(/\r?\n/); // unfold continuation lines
  let ev: Record<string, { params: string; value: string }> | undefined;
  for (const line of lines) {
    if (line === 'BEGIN:VEVENT') {
      take();
      ev = {};
      continue;
    }
    if (line === 'END:VEVENT' && ev) {
      const interval = toInterval(ev, zone);
      ev = undefined;
      yield interval;
      continue;
    }
    if (!ev) continue;
    const m = /^([A-Z-]+)((?:;[^:]*)?):(.*)$/.exec(line);
    if (m && !(m[1] in ev)) ev[m[1]] = { params: m[2], value: m[3].trim() };
  }
}

/** A UTC date-time (yyyyMMddTHHmmssZ) in epoch milliseconds without luxon; undefined for any other form or an impossible time. */
function utcMillis(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const at = new Date(ms);
  return at.getUTCFullYear() === y && at.getUTCMonth() === mo - 1 && at.getUTCDate() === d && h < 24 && mi < 60 && s < 60 ? ms : undefined;
}

function toInterval(ev: Record<string, { params: string; value: string }>, zone: string): BusyInterval | undefined {
  if (ev.TRANSP?.value.toUpperCase() === 'TRANSPARENT' || ev.STATUS?.value.toUpperCase() === 'CANCELLED') return undefined;
  if (!ev.DTSTART) return undefined;
  // the common form (UTC start and end, as servers expanding recurrences answer) read without luxon: a server may answer thousands
  const [fastStart, fastEnd] = [utcMillis(ev.DTSTART.value), utcMillis(ev.DTEND?.value)];
  if (fastStart !== undefined && fastEnd !== undefined) return fastEnd > fastStart ? { start: new Date(fastStart), end: new Date(fastEnd) } : undefined;
  const start = parseIcsTime(ev.DTSTART.params, ev.DTSTART.value, zone);
  if (!start?.at.isValid) return undefined;
  let end = ev.DTEND && parseIcsTime(ev.DTEND.params, ev.DTEND.value, zone)?.at;
  if (!end && ev.DURATION) {
    const d = Duration.fromISO(ev.DURATION.value.replace(/^\+/, ''));
    if (d.isValid) end = start.at.plus(d);
  }
  end ??= start.allDay ? start.at.plus({ days: 1 }) : start.at;
  if (!end.isValid || end <= start.at) return undefined;
  return { start: start.at.toUTC().toJSDate(), end: end.toUTC().toJSDate() };
}
