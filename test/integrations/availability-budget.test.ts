import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import {
  CalDavBusyTimeSource, CALENDAR_CONCURRENCY, EVENTS_PER_TURN, MAX_CALENDARS, MAX_EVENTS, MAX_EVENTS_PER_CALENDAR, MAX_REPORT_BYTES,
  MAX_REQUEST_REPORT_BYTES, readCalendars,
} from '../../src/modules/integrations/busy-time-source.js';
import { HORIZON_DAYS } from '../../src/modules/integrations/availability.js';
import { BUSY_TIMES_TTL_MS, FAILED_BUSY_TIMES_TTL_MS } from '../../src/modules/integrations/busy-times-cache.js';
import { PublicProvidersService } from '../../src/modules/integrations/public-providers.service.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { startCalDavDouble, type CalDavDouble } from '../support/doubles/caldav-double.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { testKeys } from './keys.js';

const HOURS = { timezone: 'UTC', days: [1, 2, 3, 4, 5, 6, 7], start: '09:00', end: '12:00' };
const multistatus = (ics: string) => '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
  + `<D:response><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR\r\n${ics}END:VCALENDAR</C:calendar-data></D:prop></D:propstat></D:response></D:multistatus>`;
/** an answer of about `bytes` (decompressed) holding no event: what costs the API most to read for nothing */
const junk = (bytes: number) => multistatus('X-A:b\r\n'.repeat(Math.floor(bytes / 7)));
/** `n` events of an hour at 09:00 New York time (a TZID: read through the zone database) */
const tzidEvents = (n: number) => multistatus(
  'BEGIN:VEVENT\r\nDTSTART;TZID=America/New_York:20300312T090000\r\nDTEND;TZID=America/New_York:20300312T100000\r\nEND:VEVENT\r\n'.repeat(n));
const unavailable = { code: 'availability.calendar_unavailable', message: 'the provider\'s calendar could not be read; try again later' };

/**
 * TEST DOUBLE around the API's outbound fetch: the bytes of answer bodies the API took (decompressed: gzip is undone by
 * fetch), counted as it reads them, never ahead of it.
 */
function countingFetch(inner: typeof fetch, read: { bytes: number }): typeof fetch {
  return (async (url: URL, init: RequestInit) => {
    const res = await inner(url, init);
    if (!res.body) return res;
    const source = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await source.read();
        if (done) return controller.close();
        read.bytes += value.byteLength;
        controller.enqueue(value);
      },
      cancel: (reason) => source.cancel(reason),
    }, { highWaterMark: 0 });
    return new Response(body, { status: res.status, headers: res.headers });
  }) as unknown as typeof fetch;
}

/**
 * A public provider page's availability asks the provider's own CalDAV server, which may answer anything, for every
 * anonymous visitor: one request reads at most MAX_REQUEST_REPORT_BYTES of answers (decompressed, as they stream) and
 * MAX_EVENTS events over all its calendars (past either: 503, as any calendar that cannot be read, and no calendar more
 * is asked), gives the event loop back as it reads, and what it read is answered again for a minute.
 */
describe('what one availability request reads', () => {
  let t: TestApp;
  let clock: ManualClock;
  let caldav: CalDavDouble;
  let coach: TestUser;
  const read = { bytes: 0 };
  const lines: string[] = [];
  const calendars = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `/${prefix}/c${i}/`);
  const useCalendars = (paths: string[]) => t.http.patch('/v1/me/provider').set(coach.auth)
    .send({ settings: { calendar: { selectedCalendarIds: paths.map((p) => `${caldav.url}${p}`) } } }).expect(200);
  const availability = (range = 'from=2030-03-11&to=2030-03-12') => t.http.get(`/v1/public/providers/budget-coach/availability?${range}`);
  const reasons = () => lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'calendar busy times unavailable').map((l) => l.reason);
  const reset = () => {
    caldav.requests.length = 0;
    caldav.bytesSent = 0;
    read.bytes = 0;
    lines.length = 0;
  };

  beforeAll(async () => {
    clock = ManualClock.at('2030-03-10T12:00:00Z');
    const logs = new Writable({ write: (chunk: Buffer, _e, done) => done(void lines.push(...chunk.toString().split('\n').filter(Boolean))) });
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, LOG_LEVEL: 'warn' }, { clock, logDestination: logs });
    caldav = await startCalDavDouble({ username: 'coach@example.com', password: 'pw' });
    coach = await registerUser(t, 'budget');
    const { body: integration } = await t.http.post('/v1/me/integrations').set(coach.auth).send({ integrationType: 'caldav' }).expect(201);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(coach.auth)
      .send({ credentials: { username: 'coach@example.com', password: 'pw', serverUrl: caldav.url } }).expect(200);
    await t.http.patch('/v1/me/provider').set(coach.auth).send({ publicSlug: 'budget-coach', isPublic: true, timezone: 'UTC', settings: { workingHours: HOURS } }).expect(200);
    const service = t.app.get(PublicProvidersService);
    Reflect.set(service, 'fetch', countingFetch(Reflect.get(service, 'fetch') as typeof fetch, read));
  });
  afterAll(async () => {
    await caldav?.close();
    await t?.close();
  });

  it(`stops at ${MAX_REQUEST_REPORT_BYTES} bytes of gzip'd answers for the whole request (each within its own limit): 503, no calendar more asked`, async () => {
    // 50 calendars of 3 MB each once inflated (a few KB on the wire): 150 MB of text for one anonymous request
    const paths = calendars('junk', MAX_CALENDARS);
    const answer = junk(3 * 1024 * 1024);
    expect(answer.length).toBeLessThan(MAX_REPORT_BYTES);
    for (const path of paths) caldav.answers.set(path, answer);
    caldav.gzip = true;
    await useCalendars(paths);
    reset();
    const res = await availability().expect(503);
    expect(res.body.error).toEqual(unavailable);
    expect(caldav.bytesSent).toBeLessThan(answer.length / 20); // gzip'd
    // enough answers to pass the request's bytes, at most the four asked at once and the two that fit in them; those
    // bytes were read, and barely more
    expect(caldav.requests.length).toBeGreaterThanOrEqual(Math.ceil(MAX_REQUEST_REPORT_BYTES / answer.length));
    expect(caldav.requests.length).toBeLessThanOrEqual(CALENDAR_CONCURRENCY + 2);
    expect(read.bytes).toBeGreaterThan(MAX_REQUEST_REPORT_BYTES);
    expect(read.bytes).toBeLessThanOrEqual(MAX_REQUEST_REPORT_BYTES + CALENDAR_CONCURRENCY * 64 * 1024);
    expect(reasons()).toEqual([expect.stringMatching(
      new RegExp(`^CalDAV REPORT on /junk/c\\d+/ answered more than the ${MAX_REQUEST_REPORT_BYTES} bytes read for all calendars of a request together$`))]);
  });

  it(`stops at ${MAX_EVENTS} events for the whole request: 503, no calendar more asked`, async () => {
    const paths = calendars('tzid', MAX_CALENDARS);
    for (const path of paths) caldav.answers.set(path, tzidEvents(1000));
    await useCalendars(paths);
    reset();
    const res = await availability().expect(503);
    expect(res.body.error).toEqual(unavailable);
    expect(caldav.requests.length).toBeGreaterThan(MAX_EVENTS / 1000);
    expect(caldav.requests.length).toBeLessThanOrEqual(MAX_EVENTS / 1000 + CALENDAR_CONCURRENCY);
    expect(reasons()).toEqual([expect.stringMatching(
      new RegExp(`^CalDAV REPORT on /tzid/c\\d+/ answered more events than the ${MAX_EVENTS} read for all calendars of a request together$`))]);
  });

  it(`answers what was read again for ${BUSY_TIMES_TTL_MS / 1000} s (on the injected clock), then asks again; a change of the settings is read at once`, async () => {
    caldav.gzip = false;
    caldav.calendars.set('/cached/home/', ['BEGIN:VEVENT\r\nDTSTART:20300311T100000Z\r\nDTEND:20300311T110000Z\r\nEND:VEVENT']);
    await useCalendars(['/cached/home/']);
    reset();
    const times = async (range?: string) => (await availability(range).expect(200)).body.slots.map((s: { date: string; time: string }) => `${s.date} ${s.time}`);
    const busy = ['2030-03-11 09:00', '2030-03-11 11:00', '2030-03-12 09:00', '2030-03-12 10:00', '2030-03-12 11:00'];
    expect(await times()).toEqual(busy);
    expect(await times()).toEqual(busy);
    // the event is gone on the server: still answered as read until the minute has passed (the clock is moved to 5 s
    // before: it also runs with the wall clock, which this test takes far less of)
    caldav.calendars.set('/cached/home/', []);
    clock.advance(BUSY_TIMES_TTL_MS - 5000);
    expect(await times()).toEqual(busy);
    expect(caldav.requests.map((r) => r.path)).toEqual(['/cached/home/']);
    clock.advance(5000);
    expect(await times()).toContain('2030-03-11 10:00');
    expect(caldav.requests).toHaveLength(2);
    // another range is a slice of the same read: the provider's whole window was read
    expect(await times('from=2030-03-13&to=2030-03-13')).toEqual(['2030-03-13 09:00', '2030-03-13 10:00', '2030-03-13 11:00']);
    expect(caldav.requests).toHaveLength(2);
    // a calendar that cannot be read is answered as such again, and logged once, for FAILED_BUSY_TIMES_TTL_MS only
    caldav.calendars.delete('/cached/home/');
    clock.advance(BUSY_TIMES_TTL_MS);
    reset();
    expect((await availability().expect(503)).body.error).toEqual(unavailable);
    clock.advance(FAILED_BUSY_TIMES_TTL_MS - 5000);
    expect((await availability().expect(503)).body.error).toEqual(unavailable);
    expect(caldav.requests).toHaveLength(1);
    expect(reasons()).toEqual(['CalDAV REPORT on /cached/home/ answered 404']);
    // past it, asked again: the server answers again, and what it answers is kept the whole minute
    caldav.calendars.set('/cached/home/', []);
    clock.advance(5000);
    expect(await times()).toHaveLength(6);
    expect(caldav.requests).toHaveLength(2);
    clock.advance(FAILED_BUSY_TIMES_TTL_MS);
    expect(await times()).toHaveLength(6);
    expect(caldav.requests.map((r) => r.path)).toEqual(['/cached/home/', '/cached/home/']);
    caldav.requests.length = 0;
    // the settings changed (or the integrations, or their secrets): read at once
    caldav.calendars.set('/cached/work/', []);
    await useCalendars(['/cached/work/']);
    expect(await times()).toHaveLength(6);
    expect(caldav.requests.map((r) => r.path)).toEqual(['/cached/work/']);
  });

  it(`reads a provider's calendars once a minute whatever ranges visitors ask (yesterday to ${HORIZON_DAYS} days ahead, UTC): ranges at once wait for the one read`, async () => {
    caldav.calendars.set('/ranges/home/', ['BEGIN:VEVENT\r\nDTSTART:20300420T090000Z\r\nDTEND:20300420T100000Z\r\nEND:VEVENT']);
    caldav.calendars.set('/ranges/work/', []);
    await useCalendars(['/ranges/home/', '/ranges/work/']);
    clock.advance(BUSY_TIMES_TTL_MS);
    reset();
    // 40 distinct ranges, from yesterday (2030-03-09) to the last day of the window (2030-06-10), 20 of them at once
    const day = (n: number) => new Date(Date.UTC(2030, 2, 9 + n)).toISOString().slice(0, 10);
    const ranges = Array.from({ length: 40 }, (_, i) => `from=${day(i)}&to=${day(Math.min(i + (i % 5), 93))}`);
    ranges.push(`from=${day(63)}&to=${day(93)}`);
    const first = await Promise.all(ranges.slice(0, 20).map((r) => availability(r)));
    const rest = [];
    for (const r of ranges.slice(20)) rest.push(await availability(r));
    expect([...first, ...rest].map((r) => r.status)).toEqual(ranges.map(() => 200));
    // one REPORT a calendar for all of them, over the whole window, each range answered its slice of it
    expect(caldav.requests.map((r) => r.path).sort()).toEqual(['/ranges/home/', '/ranges/work/']);
    expect(caldav.requests[0].body).toContain('<C:time-range start="20300309T000000Z" end="20300611T000000Z"/>');
    const april20 = (await availability('from=2030-04-20&to=2030-04-20').expect(200)).body;
    expect(april20.slots.map((s: { time: string }) => s.time)).toEqual(['10:00', '11:00']);
    expect(caldav.requests).toHaveLength(2);
    // a minute later, once again
    clock.advance(BUSY_TIMES_TTL_MS);
    for (const r of ranges.slice(0, 10)) await availability(r).expect(200);
    expect(caldav.requests).toHaveLength(4);
  });

  it('refuses a range before yesterday or past the horizon (UTC, on the clock) with its code, asking no calendar', async () => {
    reset();
    const refused = await Promise.all([
      'from=2030-03-08&to=2030-03-09', 'from=1000-01-01&to=1000-01-31', 'from=2030-06-10&to=2030-06-11', 'from=9999-12-01&to=9999-12-31',
    ].map((r) => availability(r)));
    expect(refused.map((r) => [r.status, r.body.error.code, r.body.error.message])).toEqual([
      [400, 'availability.from_past', 'from must not be before 2030-03-09 (yesterday, UTC)'],
      [400, 'availability.from_past', 'from must not be before 2030-03-09 (yesterday, UTC)'],
      [400, 'availability.to_beyond_horizon', `to must not be after 2030-06-10 (${HORIZON_DAYS} days after today, UTC)`],
      [400, 'availability.to_beyond_horizon', `to must not be after 2030-06-10 (${HORIZON_DAYS} days after today, UTC)`],
    ]);
    expect(caldav.requests).toHaveLength(0);
    // the edges are asked
    await availability('from=2030-03-09&to=2030-03-09').expect(200);
    await availability('from=2030-06-10&to=2030-06-10').expect(200);
  });
});

describe('reading a calendar of many events', () => {
  it(`gives the event loop back every ${EVENTS_PER_TURN} events: other requests run while one is read`, async () => {
    const ics = 'BEGIN:VEVENT\r\nDTSTART:20300301T100000Z\r\nDTEND:20300301T110000Z\r\nEND:VEVENT\r\n'.repeat(MAX_EVENTS_PER_CALENDAR);
    const fake = (async () => new Response(multistatus(ics), { status: 207 })) as typeof fetch;
    const source = new CalDavBusyTimeSource({ username: 'u', password: 'p', serverUrl: 'https://caldav.example.com' }, ['/many/'], 'UTC', fake);
    // what else the process does meanwhile: one step a turn of the event loop
    let turns = 0;
    let reading = true;
    const step = () => {
      if (!reading) return;
      turns++;
      setImmediate(step);
    };
    setImmediate(step);
    const busy = await readCalendars(source.calendars().map((url) => ({ source, url })), { start: new Date('2030-03-01T00:00:00Z'), end: new Date('2030-03-02T00:00:00Z') });
    reading = false;
    expect(busy).toHaveLength(MAX_EVENTS_PER_CALENDAR);
    expect(turns).toBeGreaterThanOrEqual(MAX_EVENTS_PER_CALENDAR / EVENTS_PER_TURN);
  });
});
