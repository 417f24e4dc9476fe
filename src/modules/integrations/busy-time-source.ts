import { DateTime, Duration } from 'luxon';
import { readBodyAtMost } from '../../platform/http/body-reader.js';

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
 * The most of one REPORT answer that is read: the server is one a user chose, and anonymous visitors of a
 * public provider page make the API ask it. A month of a busy calendar, recurrences expanded, is far less.
 */
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;

const icsUtc = (d: Date) => DateTime.fromJSDate(d, { zone: 'utc' }).toFormat("yyyyMMdd'T'HHmmss'Z'");

/**
 * Busy times from CalDAV calendars (as iCloud serves them): one REPORT calendar-query with a
 * time-range per selected calendar, asking the server to expand recurrences, then the VEVENTs'
 * DTSTART/DTEND. Calendars on another origin than the credentials' server are never asked, so
 * the credentials cannot be sent elsewhere.
 */
export class CalDavBusyTimeSource implements BusyTimeSource {
  constructor(
    private readonly credentials: CalDavCredentials,
    private readonly calendarUrls: string[],
    /** zone for floating times and all-day events (the provider's) */
    private readonly zone: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** The credentials' server only; for iCloud also its partition hosts (pNN-caldav.icloud.com), over https. */
  private mayAsk(url: URL, origin: string): boolean {
    if (url.origin === origin) return true;
    return !this.credentials.serverUrl && url.protocol === 'https:' && url.port === '' && ICLOUD_HOST.test(url.hostname);
  }

  async busyTimes(range: { start: Date; end: Date }): Promise<BusyInterval[]> {
    const origin = new URL(this.credentials.serverUrl ?? ICLOUD_CALDAV_URL).origin;
    const auth = 'Basic ' + Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64');
    const body = `<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data><C:expand start="${icsUtc(range.start)}" end="${icsUtc(range.end)}"/></C:calendar-data></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="${icsUtc(range.start)}" end="${icsUtc(range.end)}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>`;
    const out: BusyInterval[] = [];
    for (const calendar of this.calendarUrls) {
      const url = new URL(calendar, origin);
      if (!this.mayAsk(url, origin)) continue;
      const res = await this.fetchImpl(url, {
        method: 'REPORT',
        headers: { Authorization: auth, Depth: '1', 'Content-Type': 'application/xml; charset=utf-8' },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      // the status only: a server's error page could echo what it was sent
      if (res.status !== 207 && res.status !== 200) {
        void res.body?.cancel().catch(() => undefined);
        throw new Error(`CalDAV REPORT on ${url.pathname} answered ${res.status}`);
      }
      const multistatus = await readBodyAtMost(res, MAX_REPORT_BYTES, { over: 'fail', what: `CalDAV REPORT on ${url.pathname}` });
      for (const ics of calendarDataOf(multistatus)) out.push(...busyFromIcs(ics, this.zone));
    }
    return out.filter((b) => b.end > range.start && b.start < range.end);
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
  if (/^\d{8}$/.test(value)) {
    return { at: DateTime.fromFormat(value, 'yyyyMMdd', { zone: tzid ?? zone }), allDay: true };
  }
  const m = /^(\d{8}T\d{6})(Z?)$/.exec(value);
  if (!m) return undefined;
  const at = DateTime.fromFormat(m[1], "yyyyMMdd'T'HHmmss", { zone: m[2] ? 'utc' : tzid ?? zone });
  return at.isValid ? { at, allDay: false } : undefined;
}

export function busyFromIcs(ics: string, zone: string): BusyInterval[] {
  const lines = ics.replace(/\r?\n[ \t]/g, '').split(/\r?\n/); // unfold continuation lines
  const out: BusyInterval[] = [];
  let ev: Record<string, { params: string; value: string }> | undefined;
  for (const line of lines) {
    if (line === 'BEGIN:VEVENT') { ev = {}; continue; }
    if (line === 'END:VEVENT' && ev) {
      const interval = toInterval(ev, zone);
      if (interval) out.push(interval);
      ev = undefined;
      continue;
    }
    if (!ev) continue;
    const m = /^([A-Z-]+)((?:;[^:]*)?):(.*)$/.exec(line);
    if (m && !(m[1] in ev)) ev[m[1]] = { params: m[2], value: m[3].trim() };
  }
  return out;
}

function toInterval(ev: Record<string, { params: string; value: string }>, zone: string): BusyInterval | undefined {
  if (ev.TRANSP?.value.toUpperCase() === 'TRANSPARENT' || ev.STATUS?.value.toUpperCase() === 'CANCELLED') return undefined;
  if (!ev.DTSTART) return undefined;
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
