import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CalDavBusyTimeSource, MAX_REPORT_BYTES } from '../../src/modules/integrations/busy-time-source.js';
import { BodyTooLarge } from '../../src/platform/http/body-reader.js';
import { createTestApp, type TestApp } from '../support/app.js';
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
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env });
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
