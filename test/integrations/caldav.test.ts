import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { busyFromIcs, CalDavBusyTimeSource, CalendarUnreadable, calendarDataOf, MAX_REPORT_BYTES } from '../../src/modules/integrations/busy-time-source.js';
import { openSlots, whatsappUrl } from '../../src/modules/integrations/availability.js';
import { DateTime } from 'luxon';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startCalDavDouble, type CalDavDouble } from '../support/doubles/caldav-double.js';

const iso = (b: { start: Date; end: Date }) => [b.start.toISOString(), b.end.toISOString()];

describe('iCalendar busy times', () => {
  it('reads UTC, TZID, floating, all-day and DURATION forms, and skips cancelled and transparent events', () => {
    const ics = [
      'BEGIN:VCALENDAR',
      'BEGIN:VTIMEZONE', 'TZID:Europe/London', 'BEGIN:STANDARD', 'DTSTART:19701025T020000', 'END:STANDARD', 'END:VTIMEZONE',
      'BEGIN:VEVENT', 'DTSTART:20300310T150000Z', 'DTEND:20300310T160000Z', 'END:VEVENT',
      'BEGIN:VEVENT', 'DTSTART;TZID="Europe/London":20300331T090000', 'DTEND;TZID="Europe/London":20300331T093000', 'END:VEVENT',
      'BEGIN:VEVENT', 'DTSTART:20300105T100000', 'DURATION:PT45M', 'END:VEVENT',
      'BEGIN:VEVENT', 'DTSTART;VALUE=DATE:20300106', 'END:VEVENT',
      'BEGIN:VEVENT', 'DTSTART:20300107T100000Z', 'DTEND:20300107T110000Z', 'STATUS:CANCELLED', 'END:VEVENT',
      'BEGIN:VEVENT', 'DTSTART:20300107T120000Z', 'DTEND:20300107T130000Z', 'TRANSP:TRANSPARENT', 'END:VEVENT',
      'BEGIN:VEVENT', 'DTSTART:garbage', 'END:VEVENT',
      'END:VCALENDAR',
    ].join('\r\n');
    expect(busyFromIcs(ics, 'Asia/Dubai').map(iso)).toEqual([
      ['2030-03-10T15:00:00.000Z', '2030-03-10T16:00:00.000Z'],
      ['2030-03-31T08:00:00.000Z', '2030-03-31T08:30:00.000Z'], // BST
      ['2030-01-05T06:00:00.000Z', '2030-01-05T06:45:00.000Z'], // floating = the provider's zone
      ['2030-01-05T20:00:00.000Z', '2030-01-06T20:00:00.000Z'], // all day in Dubai
    ]);
  });

  it('finds calendar-data under any namespace prefix and decodes XML escapes', () => {
    const xml = '<D:multistatus xmlns:D="DAV:"><D:response><C:calendar-data xmlns:C="urn:ietf:params:xml:ns:caldav">BEGIN:VCALENDAR&#13;\nX:a&amp;b&lt;c</C:calendar-data></D:response>' +
      '<response><calendar-data><![CDATA[BEGIN:VEVENT]]></calendar-data></response></D:multistatus>';
    expect(calendarDataOf(xml)).toEqual(['BEGIN:VCALENDAR\r\nX:a&b<c', 'BEGIN:VEVENT']);
  });

  // an answer is read up to MAX_REPORT_BYTES (a server a provider chose may send anything): it is parsed in one pass,
  // where a lazy match from every start tag to the end tag would scan to the end of the answer once per start tag
  it('parses an answer at the size limit of start tags that never end in one pass', () => {
    const fill = (piece: string) => piece.repeat(Math.floor(MAX_REPORT_BYTES / piece.length));
    expect(calendarDataOf(fill('<C:calendar-data>'))).toEqual([]);
    expect(calendarDataOf(fill('<C:calendar-data '))).toEqual([]);
    const cdata = fill('<![CDATA[');
    expect(calendarDataOf(`<calendar-data>${cdata}</calendar-data>`)).toEqual([cdata]);
    expect(calendarDataOf(`<calendar-data>a<![CDATA[b]]>c<![CDATA[d</calendar-data><x:calendar-data a="1">e</x:calendar-data>`)).toEqual(['abc<![CDATA[d', 'e']);
  });
});

describe('CalDavBusyTimeSource against the CalDAV test double', () => {
  let caldav: CalDavDouble;
  beforeAll(async () => {
    caldav = await startCalDavDouble({ username: 'u@example.com', password: 'pw' });
    caldav.calendars.set('/1/calendars/home/', [
      'BEGIN:VEVENT\r\nDTSTART:20300310T150000Z\r\nDTEND:20300310T160000Z\r\nEND:VEVENT',
      'BEGIN:VEVENT\r\nDTSTART:20310101T000000Z\r\nDTEND:20310101T010000Z\r\nEND:VEVENT', // outside the range
    ]);
  });
  afterAll(() => caldav.close());

  it('sends REPORT calendar-query with a time-range and Basic credentials, and reads the events in range', async () => {
    const source = new CalDavBusyTimeSource({ username: 'u@example.com', password: 'pw', serverUrl: caldav.url }, ['/1/calendars/home/'], 'America/New_York');
    const busy = await source.busyTimes({ start: new Date('2030-03-10T00:00:00Z'), end: new Date('2030-03-11T00:00:00Z') });
    expect(busy.map(iso)).toEqual([['2030-03-10T15:00:00.000Z', '2030-03-10T16:00:00.000Z']]);
    const [req] = caldav.requests;
    expect(req).toMatchObject({ method: 'REPORT', path: '/1/calendars/home/', depth: '1' });
    expect(req.body).toContain('<C:comp-filter name="VEVENT">');
    expect(req.body).toContain('<C:time-range start="20300310T000000Z" end="20300311T000000Z"/>');
  });

  it('never sends the credentials to another host', async () => {
    const asked: string[] = [];
    const fake = (async (url: URL) => {
      asked.push(url.toString());
      return new Response('<multistatus/>', { status: 207 });
    }) as unknown as typeof fetch;
    const range = { start: new Date('2030-03-10T00:00:00Z'), end: new Date('2030-03-11T00:00:00Z') };
    const icloud = ['https://p42-caldav.icloud.com/1/calendars/home/', 'https://caldav.icloud.com/1/calendars/work/',
      'https://evil.example/1/', 'http://p42-caldav.icloud.com/1/', 'https://caldav.icloud.com.evil.example/1/'];
    await new CalDavBusyTimeSource({ username: 'u', password: 'p' }, icloud, 'UTC', fake).busyTimes(range);
    expect(asked).toEqual(['https://p42-caldav.icloud.com/1/calendars/home/', 'https://caldav.icloud.com/1/calendars/work/']);
    asked.length = 0;
    await new CalDavBusyTimeSource({ username: 'u', password: 'p', serverUrl: 'https://dav.example' }, [...icloud, 'https://dav.example/cal/'], 'UTC', fake).busyTimes(range);
    expect(asked).toEqual(['https://dav.example/cal/']);
  });

  it('names a request that failed by the calendar\'s origin and path and the error\'s name: never the client\'s message, which quotes the URL', async () => {
    const range = { start: new Date('2030-03-10T00:00:00Z'), end: new Date('2030-03-11T00:00:00Z') };
    // a URL with a user part (refused as a setting now, but stored before): the HTTP client refuses it, quoting it whole
    const withPassword = 'https://ada%40example.com:Sup3r-Secret@caldav.icloud.com/1/calendars/home/';
    const clientError = await fetch(withPassword).catch((e: Error) => e);
    expect(String((clientError as Error).message)).toContain('Sup3r-Secret');
    const err = await new CalDavBusyTimeSource({ username: 'u', password: 'p' }, [withPassword], 'UTC').busyTimes(range).then(() => new Error('read'), (e: Error) => e);
    expect(err).toBeInstanceOf(CalendarUnreadable);
    expect(err.message).toBe('CalDAV REPORT on https://caldav.icloud.com/1/calendars/home/ failed: TypeError');
    // a server that cannot be reached (a port just closed): the cause's name and code
    const gone = createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const { port } = gone.address() as AddressInfo;
    await new Promise((resolve) => gone.close(resolve));
    const closed = await new CalDavBusyTimeSource({ username: 'u', password: 'p', serverUrl: `http://127.0.0.1:${port}` }, ['/cal/'], 'UTC').busyTimes(range).then(() => new Error('read'), (e: Error) => e);
    expect(closed.message).toBe(`CalDAV REPORT on http://127.0.0.1:${port}/cal/ failed: TypeError (Error ECONNREFUSED)`);
  });

  it('fails on refused credentials with a message that carries no credential', async () => {
    const source = new CalDavBusyTimeSource({ username: 'u@example.com', password: 'wrong-secret-pw', serverUrl: caldav.url }, ['/1/calendars/home/'], 'UTC');
    const err = await source.busyTimes({ start: new Date('2030-03-10T00:00:00Z'), end: new Date('2030-03-11T00:00:00Z') }).catch((e) => e);
    expect(err.message).toBe('CalDAV REPORT on /1/calendars/home/ answered 401');
  });
});

describe('slots', () => {
  it('skips slots that have started and fills WhatsApp links only when enabled', () => {
    const zone = 'Asia/Dubai';
    const day = DateTime.fromISO('2030-01-07', { zone });
    const slots = openSlots({
      hours: { timezone: zone, days: [1], start: '09:00', end: '12:00' }, from: day, to: day, durationMinutes: 60, busy: [],
      now: new Date('2030-01-07T06:30:00Z'), whatsapp: { enabled: true, phoneE164: '+971 50', messageTemplate: '{date} {time} & more' },
    });
    expect(slots.map((s) => s.time)).toEqual(['11:00']);
    expect(slots[0].whatsappUrl).toBe('https://wa.me/97150?text=2030-01-07%2011%3A00%20%26%20more');
    expect(whatsappUrl({ enabled: false, phoneE164: '+971500000000', messageTemplate: '{date}{time}' }, 'd', 't')).toBeUndefined();
  });
});
