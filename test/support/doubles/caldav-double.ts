import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

/**
 * TEST DOUBLE of a CalDAV server (as iCloud's caldav.icloud.com): a local HTTP server that answers
 * REPORT calendar-query requests with a 207 multistatus whose calendar-data holds the VEVENTs
 * given to it. It checks Basic credentials and returns the events overlapping the requested
 * time-range, like a real server. Not a CalDAV implementation: just enough for the client.
 */
export interface CalDavDouble {
  url: string;
  /** calendar path -> VEVENT blocks ("BEGIN:VEVENT ... END:VEVENT") */
  calendars: Map<string, string[]>;
  requests: { method: string; path: string; authorization?: string; depth?: string; body: string }[];
  /** calendar path -> a multistatus answered as it is to a REPORT with the right credentials (instead of `calendars`') */
  answers: Map<string, string>;
  /** whether answers are sent gzip'd (Content-Encoding: gzip), as servers do for a client that takes it */
  gzip: boolean;
  /** bytes of answers written to the connections (gzip'd ones as sent) */
  bytesSent: number;
  close(): Promise<void>;
}

const parseUtc = (s: string) => new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A rough overlap test for the double's filtering: UTC and TZID forms, read with an explicit offset table. */
function eventWindow(vevent: string): { start: Date; end: Date } | undefined {
  const m = (name: string) => new RegExp(`^${name}(;[^:]*)?:(\\d{8}T\\d{6}Z?)`, 'm').exec(vevent);
  const s = m('DTSTART');
  const e = m('DTEND');
  if (!s) return undefined;
  const toDate = (v: RegExpExecArray) => (v[2].endsWith('Z') ? parseUtc(v[2]) : parseUtc(`${v[2]}Z`));
  const start = toDate(s);
  const end = e ? toDate(e) : start;
  // TZID / floating times are within ±14 h of their UTC reading: widen so filtering never drops them
  const slack = s[2].endsWith('Z') ? 0 : 14 * 3600_000;
  return { start: new Date(start.getTime() - slack), end: new Date(end.getTime() + slack) };
}

export async function startCalDavDouble(credentials: { username: string; password: string }): Promise<CalDavDouble> {
  const calendars = new Map<string, string[]>();
  const requests: CalDavDouble['requests'] = [];
  const compressed = new Map<string, Buffer>();
  const expected = 'Basic ' + Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, depth: req.headers.depth as string | undefined, body });
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="double"' }).end();
        return;
      }
      if (req.method !== 'REPORT') {
        res.writeHead(405).end();
        return;
      }
      const answer = double.answers.get(path);
      if (answer !== undefined) {
        send(answer);
        return;
      }
      const events = calendars.get(path);
      if (!events) {
        res.writeHead(404).end();
        return;
      }
      const range = /<C:time-range start="(\d{8}T\d{6}Z)" end="(\d{8}T\d{6}Z)"/.exec(body);
      const from = range ? parseUtc(range[1]) : new Date(0);
      const to = range ? parseUtc(range[2]) : new Date(8.64e15);
      const responses = events
        .map((vevent, i) => ({ vevent, i, w: eventWindow(vevent) }))
        .filter(({ w }) => !w || (w.end > from && w.start < to))
        .map(({ vevent, i }) => {
          const ics = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//OmniZen//CalDAV double//EN', vevent.trim(), 'END:VCALENDAR', ''].join('\r\n');
          return `<d:response><d:href>${path}event-${i}.ics</d:href><d:propstat><d:prop>` +
            `<cal:calendar-data>${escapeXml(ics)}</cal:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>`;
        });
      send(`<?xml version="1.0" encoding="UTF-8"?>\n<d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">${responses.join('')}</d:multistatus>`);
    });
    function send(multistatus: string) {
      // each answer compressed once (a test answers the same megabytes to many calendars)
      const body = double.gzip ? compressed.get(multistatus) ?? compressed.set(multistatus, gzipSync(multistatus)).get(multistatus)! : Buffer.from(multistatus);
      double.bytesSent += body.length;
      res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8', ...(double.gzip && { 'Content-Encoding': 'gzip' }) });
      res.end(body);
    }
  });
  const double: CalDavDouble = {
    url: '',
    calendars,
    requests,
    answers: new Map(),
    gzip: false,
    bytesSent: 0,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  double.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return double;
}
