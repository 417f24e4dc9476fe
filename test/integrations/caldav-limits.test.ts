import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DateTime } from 'luxon';
import {
  CalDavBusyTimeSource, CALENDAR_CONCURRENCY, MAX_CALENDAR_SOURCES, MAX_CALENDARS, MAX_EVENTS, MAX_EVENTS_PER_CALENDAR, MAX_REPORT_BYTES, readCalendars, TooManyBusyTimes,
} from '../../src/modules/integrations/busy-time-source.js';
import { openSlots } from '../../src/modules/integrations/availability.js';
import { BodyTooLarge } from '../../src/platform/http/body-reader.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from './keys.js';

const TOTAL = 16 * MAX_REPORT_BYTES;
const HEAD = '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">';
const TAIL = '</D:multistatus>';
const EVENT = '<D:response><D:href>/calendars/ok/1.ics</D:href><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n'
  + 'DTSTART:20300311T100000Z\r\nDTEND:20300311T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR</C:calendar-data></D:prop></D:propstat></D:response>';

/** One answer of the double: how much of it was handed to the connection, whether all of it, and when the connection closed. */
interface Served {
  path: string;
  written: number;
  finished: boolean;
  closed: Promise<void>;
}

/**
 * TEST DOUBLE of a CalDAV server a provider chose that answers REPORT with a multistatus of TOTAL bytes (16 times
 * what the API reads): /endless/ streams it chunked, /declared/ announces it in Content-Length, /ok/ answers one
 * event. It writes only as fast as the connection takes it, so `written` stays near what the client read.
 */
async function startBigCalendarServer(): Promise<{ url: string; served: Served[]; close(): Promise<void> }> {
  const served: Served[] = [];
  const stream = async (res: ServerResponse, entry: Served) => {
    const padding = Buffer.alloc(64 * 1024, ' ');
    res.write(HEAD);
    while (entry.written < TOTAL && !res.destroyed) {
      const more = res.write(padding);
      entry.written += padding.length;
      if (!more) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    if (!res.destroyed) {
      res.end(TAIL);
      entry.finished = true;
    }
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    const entry: Served = { path: req.url ?? '', written: 0, finished: false, closed: new Promise((resolve) => res.on('close', () => resolve())) };
    served.push(entry);
    if (entry.path.endsWith('/ok/')) {
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' });
      res.end(HEAD + EVENT + TAIL);
      entry.finished = true;
      return;
    }
    const declared = entry.path.endsWith('/declared/') ? { 'content-length': String(HEAD.length + TOTAL + TAIL.length) } : {};
    res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8', ...declared });
    void stream(res, entry);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Availability of a public provider page asks the provider's CalDAV server, a URL the provider chose, for every
 * anonymous visitor: what it answers is read up to MAX_REPORT_BYTES and no further; a longer answer makes the
 * calendar unavailable (503, no slots rather than double bookings), the rest never downloaded.
 */
describe('CalDAV answers larger than the API reads', () => {
  let t: TestApp;
  let coach: TestUser;
  let calendars: Awaited<ReturnType<typeof startBigCalendarServer>>;
  const availability = () => t.http.get('/v1/public/providers/big-calendar-coach/availability?from=2030-03-11&to=2030-03-11');
  const useCalendar = (name: string) => t.http.patch('/v1/me/provider').set(coach.auth)
    .send({ settings: { calendar: { selectedCalendarIds: [`${calendars.url}/calendars/${name}/`] } } }).expect(200);

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env }, { clock: ManualClock.at('2030-03-01T00:00:00Z') });
    calendars = await startBigCalendarServer();
    coach = await registerUser(t, 'big-calendar');
    const { body: integration } = await t.http.post('/v1/me/integrations').set(coach.auth).send({ integrationType: 'caldav', label: 'Self-hosted' }).expect(201);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(coach.auth)
      .send({ credentials: { username: 'coach@example.com', password: 'pw', serverUrl: calendars.url } }).expect(200);
    await t.http.patch('/v1/me/provider').set(coach.auth).send({
      publicSlug: 'big-calendar-coach', isPublic: true, timezone: 'UTC',
      settings: { workingHours: { timezone: 'UTC', days: [1, 2, 3, 4, 5, 6, 7], start: '09:00', end: '12:00' } },
    }).expect(200);
  });
  afterAll(async () => {
    await calendars?.close();
    await t?.close();
  });

  it('reads an answer within the limit: its event is busy', async () => {
    await useCalendar('ok');
    const res = await availability().expect(200);
    expect(res.body.slots.map((s: { time: string }) => s.time)).toEqual(['09:00', '11:00']);
  });

  it('stops reading a streamed answer past the limit: the calendar is unavailable, the rest is never downloaded', async () => {
    await useCalendar('endless');
    calendars.served.length = 0;
    const res = await availability().expect(503);
    expect(res.body.error).toEqual({ code: 'availability.calendar_unavailable', message: 'the provider\'s calendar could not be read; try again later' });
    const [answer] = calendars.served;
    await answer.closed; // the API closed the connection
    expect(answer.path).toBe('/calendars/endless/');
    expect(answer.finished).toBe(false);
    expect(answer.written).toBeGreaterThan(MAX_REPORT_BYTES);
    expect(answer.written).toBeLessThan(TOTAL);
  });

  it('does not start reading an answer whose Content-Length is past the limit', async () => {
    await useCalendar('declared');
    calendars.served.length = 0;
    const res = await availability().expect(503);
    expect(res.body.error).toEqual({ code: 'availability.calendar_unavailable', message: 'the provider\'s calendar could not be read; try again later' });
    const [answer] = calendars.served;
    await answer.closed;
    expect(answer.finished).toBe(false);
    expect(answer.written).toBeLessThan(TOTAL);
    // the refusal is the declared length's, before any of the body was read (a body cut off while streaming has none)
    const source = new CalDavBusyTimeSource({ username: 'coach@example.com', password: 'pw', serverUrl: calendars.url }, ['/calendars/declared/'], 'UTC');
    const refusal = await source.busyTimes({ start: new Date('2030-03-11T00:00:00Z'), end: new Date('2030-03-12T00:00:00Z') }).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(BodyTooLarge);
    expect(refusal).toMatchObject({ max: MAX_REPORT_BYTES, declared: HEAD.length + TOTAL + TAIL.length });
    expect((refusal as Error).message).toBe(`CalDAV REPORT on /calendars/declared/ answered ${HEAD.length + TOTAL + TAIL.length} bytes, more than the ${MAX_REPORT_BYTES} read`);
  });
});

/**
 * Slots by brute force: every candidate slot against every busy interval, as availability computed them before the
 * busy intervals were merged (the answer must not change, only its cost).
 */
function bruteForceSlots(days: string[], start: string, end: string, minutes: number, busy: { start: number; end: number }[]): string[] {
  const out: string[] = [];
  for (const day of days) {
    for (let s = Date.parse(`${day}T${start}:00Z`), e = s + minutes * 60_000; e <= Date.parse(`${day}T${end}:00Z`); s = e, e = s + minutes * 60_000) {
      if (!busy.some((b) => b.start < e && b.end > s)) out.push(new Date(s).toISOString());
    }
  }
  return out;
}

/**
 * `count` events on 2030-03-01..03 (UTC), the same for the same seed: a `dayShare` of them of 5 to 50 minutes at any
 * time, the others at night (00:00-05:59 starts), so that slots stay open between the daytime ones.
 */
function events(count: number, seed: number, dayShare: number): { start: number; end: number }[] {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const base = Date.parse('2030-03-01T00:00:00Z');
  return Array.from({ length: count }, () => {
    const day = Math.floor(next() * 3) * 24 * 60;
    const minute = next() < dayShare ? Math.floor(next() * 24 * 60) : Math.floor(next() * 6 * 60);
    const start = base + (day + minute) * 60_000;
    return { start, end: start + (5 + Math.floor(next() * 46)) * 60_000 };
  });
}

describe('open slots over many busy intervals', () => {
  it('are the brute-force answer: merged, touching, nested and zero-length intervals, across days', () => {
    const busy = [...events(300, 7, 0.1), { start: Date.parse('2030-03-02T10:00:00Z'), end: Date.parse('2030-03-02T10:00:00Z') }];
    const days = ['2030-03-01', '2030-03-02', '2030-03-03'];
    const slots = openSlots({
      hours: { timezone: 'UTC', days: [1, 2, 3, 4, 5, 6, 7], start: '06:00', end: '22:00' },
      from: DateTime.fromISO(days[0], { zone: 'UTC' }), to: DateTime.fromISO(days[2], { zone: 'UTC' }), durationMinutes: 15,
      busy: busy.map((b) => ({ start: new Date(b.start), end: new Date(b.end) })), now: new Date('2026-01-01'),
    });
    const expected = bruteForceSlots(days, '06:00', '22:00', 15, busy);
    expect(expected.length).toBeGreaterThan(10);
    expect(expected.length).toBeLessThan(3 * 64);
    expect(slots.map((x) => x.start)).toEqual(expected);
  });

  it('asks no calendar when more than MAX_CALENDARS are selected', async () => {
    let asked = 0;
    const source = new CalDavBusyTimeSource({ username: 'u', password: 'p', serverUrl: 'https://caldav.example.com' },
      Array.from({ length: MAX_CALENDARS + 1 }, (_, i) => `/c${i}/`), 'UTC', (async () => { asked++; return new Response('', { status: 207 }); }) as typeof fetch);
    const refusal = await source.busyTimes({ start: new Date('2030-03-01T00:00:00Z'), end: new Date('2030-03-02T00:00:00Z') }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(TooManyBusyTimes);
    expect((refusal as Error).message).toBe(`${MAX_CALENDARS + 1} calendars are selected, more than the ${MAX_CALENDARS} read`);
    expect(asked).toBe(0);
    expect(await readCalendars([], { start: new Date(0), end: new Date(1) })).toEqual([]);
  });

  it(`reads with at most ${MAX_CALENDAR_SOURCES} integrations and ${MAX_CALENDARS} calendars each, and ${MAX_EVENTS} events all together`, async () => {
    const range = { start: new Date('2030-03-01T00:00:00Z'), end: new Date('2030-03-02T00:00:00Z') };
    let asked = 0;
    let perCalendar = MAX_EVENTS / 4;
    const vevent = 'BEGIN:VEVENT\r\nDTSTART:20300301T100000Z\r\nDTEND:20300301T110000Z\r\nEND:VEVENT\r\n';
    const fake = (async () => {
      asked++;
      return new Response(`${HEAD}<C:calendar-data>BEGIN:VCALENDAR\r\n${vevent.repeat(perCalendar)}END:VCALENDAR</C:calendar-data>${TAIL}`, { status: 207 });
    }) as typeof fetch;
    // one iCloud account connected twice (as iCloud, and as CalDAV at caldav.icloud.com): both may ask every calendar
    const ids = Array.from({ length: MAX_CALENDARS }, (_, i) => `https://caldav.icloud.com/1/calendars/c${i}/`);
    const sources = Array.from({ length: MAX_CALENDAR_SOURCES + 1 }, (_, i) =>
      new CalDavBusyTimeSource({ username: 'u', password: 'p', ...(i % 2 ? { serverUrl: 'https://caldav.icloud.com' } : {}) }, ids, 'UTC', fake));
    const reads = (n: number, calendars: number) => sources.slice(0, n).flatMap((source) => source.calendars().slice(0, calendars).map((url) => ({ source, url })));
    // more integrations than a provider has, or more calendars on one than are selected: nothing is asked
    const tooMany = await readCalendars(reads(MAX_CALENDAR_SOURCES + 1, 1), range).catch((e: unknown) => e);
    expect((tooMany as Error).message).toBe(`${MAX_CALENDAR_SOURCES + 1} calendar integrations are read, more than the ${MAX_CALENDAR_SOURCES} a provider has`);
    const [first] = reads(1, 1);
    const repeated = await readCalendars(Array.from({ length: MAX_CALENDARS + 1 }, () => first), range).catch((e: unknown) => e);
    expect((repeated as Error).message).toBe(`${MAX_CALENDARS + 1} calendars are read with one integration, more than the ${MAX_CALENDARS} selected at most`);
    expect([tooMany, repeated].map((e) => e instanceof TooManyBusyTimes)).toEqual([true, true]);
    expect(asked).toBe(0);
    // two calendars of a quarter of the events each, read by both integrations: all the request reads
    const both = await readCalendars(reads(MAX_CALENDAR_SOURCES, 2), range);
    expect(asked).toBe(2 * MAX_CALENDAR_SOURCES);
    expect(both).toHaveLength(MAX_EVENTS);
    // one event more, with whichever integration: over the request's (each integration was read within its own before)
    perCalendar = MAX_EVENTS / 4 + 1;
    const over = await readCalendars(reads(MAX_CALENDAR_SOURCES, 2), range).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(TooManyBusyTimes);
    expect((over as Error).message).toMatch(new RegExp(`^CalDAV REPORT on /1/calendars/c[01]/ answered more events than the ${MAX_EVENTS} read for all calendars of a request together$`));
  });

  it(`asks ${CALENDAR_CONCURRENCY} calendars at a time, and gives all up at the request's deadline`, async () => {
    const deadline = new AbortController();
    const started: string[] = [];
    // a server that never answers; the deadline passes once the first calendars are being asked
    const hanging = ((url: URL, init: RequestInit) => new Promise<Response>((_, reject) => {
      started.push(url.pathname);
      if (started.length === CALENDAR_CONCURRENCY) deadline.abort(new Error('the busy-time deadline passed'));
      if (init.signal!.aborted) reject(init.signal!.reason);
      init.signal!.addEventListener('abort', () => reject(init.signal!.reason));
    })) as unknown as typeof fetch;
    const source = new CalDavBusyTimeSource({ username: 'u', password: 'p', serverUrl: 'https://caldav.example.com' },
      Array.from({ length: CALENDAR_CONCURRENCY + 2 }, (_, i) => `/c${i}/`), 'UTC', hanging);
    const reads = source.calendars().map((url) => ({ source, url }));
    const refusal = await readCalendars(reads, { start: new Date('2030-03-01T00:00:00Z'), end: new Date('2030-03-02T00:00:00Z') }, deadline.signal)
      .catch((e: unknown) => e);
    expect((refusal as Error).message).toBe('the busy-time deadline passed');
    expect(started).toEqual(Array.from({ length: CALENDAR_CONCURRENCY }, (_, i) => `/c${i}/`)); // the rest never asked
  });
});

/**
 * TEST DOUBLE of a CalDAV server answering /many/<count>/<seed>/ with `count` events (events(count, seed)), in UTC as
 * servers expanding recurrences answer them: what a provider's own server may send to every anonymous visitor.
 */
describe('calendars answering many events', () => {
  const DAY_SHARE = 0.002;
  let t: TestApp;
  let coach: TestUser;
  let server: Server;
  let url: string;
  const asked: string[] = [];
  const ics = (ms: number) => DateTime.fromMillis(ms, { zone: 'utc' }).toFormat("yyyyMMdd'T'HHmmss'Z'");

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env }, { clock: ManualClock.at('2030-03-01T00:00:00Z') });
    server = createServer((req, res) => {
      req.resume();
      asked.push(req.url ?? '');
      const [, count, seed] = /^\/many\/(\d+)\/(\d+)\/$/.exec(req.url ?? '') ?? [];
      const vevents = events(Number(count ?? 0), Number(seed ?? 0), DAY_SHARE)
        .map((e) => `BEGIN:VEVENT\r\nDTSTART:${ics(e.start)}\r\nDTEND:${ics(e.end)}\r\nEND:VEVENT\r\n`).join('');
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' });
      res.end(`${HEAD}<D:response><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR\r\n${vevents}END:VCALENDAR</C:calendar-data></D:prop></D:propstat></D:response>${TAIL}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    coach = await registerUser(t, 'many-events');
    const { body: integration } = await t.http.post('/v1/me/integrations').set(coach.auth).send({ integrationType: 'caldav' }).expect(201);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(coach.auth)
      .send({ credentials: { username: 'coach@example.com', password: 'pw', serverUrl: url } }).expect(200);
    await t.http.patch('/v1/me/provider').set(coach.auth).send({
      publicSlug: 'many-events-coach', isPublic: true, timezone: 'UTC',
      settings: { workingHours: { timezone: 'UTC', days: [1, 2, 3, 4, 5, 6, 7], start: '06:00', end: '22:00' } },
    }).expect(200);
  });
  afterAll(async () => {
    server?.closeAllConnections();
    server?.close();
    await t?.close();
  });

  const useCalendars = (...paths: string[]) => t.http.patch('/v1/me/provider').set(coach.auth)
    .send({ settings: { calendar: { selectedCalendarIds: paths.map((p) => `${url}${p}`) } } }).expect(200);
  const availability = () => t.http.get('/v1/public/providers/many-events-coach/availability?from=2030-03-01&to=2030-03-03&duration=15');

  it(`subtracts ${MAX_EVENTS} events (${MAX_EVENTS_PER_CALENDAR} per calendar, the most read) as brute force would`, async () => {
    // two calendars of MAX_EVENTS_PER_CALENDAR events each, most at night: some working quarter hours stay open
    await useCalendars(`/many/${MAX_EVENTS_PER_CALENDAR}/1/`, `/many/${MAX_EVENTS / 2}/2/`);
    asked.length = 0;
    const res = await availability().expect(200);
    expect(asked.sort()).toEqual([`/many/${MAX_EVENTS_PER_CALENDAR}/1/`, `/many/${MAX_EVENTS / 2}/2/`].sort());
    const busy = [...events(MAX_EVENTS_PER_CALENDAR, 1, DAY_SHARE), ...events(MAX_EVENTS / 2, 2, DAY_SHARE)];
    const expected = bruteForceSlots(['2030-03-01', '2030-03-02', '2030-03-03'], '06:00', '22:00', 15, busy);
    expect(expected.length).toBeGreaterThan(20); // some open, some not
    expect(expected.length).toBeLessThan(3 * 64 - 20);
    expect(res.body.slots.map((s: { start: string }) => s.start)).toEqual(expected);
  });

  it('answers 503 when one calendar answers more events than are read, or all together do', async () => {
    await useCalendars(`/many/${MAX_EVENTS_PER_CALENDAR + 1}/3/`);
    const one = await availability().expect(503);
    expect(one.body.error).toEqual({ code: 'availability.calendar_unavailable', message: 'the provider\'s calendar could not be read; try again later' });
    // each calendar within its limit, all three over the integration's
    const third = Math.ceil((MAX_EVENTS + 1) / 3);
    expect(third).toBeLessThanOrEqual(MAX_EVENTS_PER_CALENDAR);
    await useCalendars(`/many/${third}/4/`, `/many/${third}/5/`, `/many/${third}/6/`);
    const all = await availability().expect(503);
    expect(all.body.error.code).toBe('availability.calendar_unavailable');
    expect(all.body.slots).toBeUndefined();
  });
});
