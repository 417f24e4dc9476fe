import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { startCalDavDouble, type CalDavDouble } from '../support/doubles/caldav-double.js';
import { testKeys } from './keys.js';
import { RESERVED_SLUGS } from '../../src/modules/integrations/providers.service.js';
import { PublicProvidersService } from '../../src/modules/integrations/public-providers.service.js';

const ALL_DAYS = [1, 2, 3, 4, 5, 6, 7];
const WHATSAPP = { enabled: true, phoneE164: '+971500000000', messageTemplate: 'Hi! Can I book {date} at {time}?' };

describe('provider profile', () => {
  let t: TestApp;
  let ada: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
  });
  afterAll(() => t.close());

  const patch = (u: TestUser, body: object) => t.http.patch('/v1/me/provider').set(u.auth).send(body);

  it('reads the defaults before the first save (Asia/Dubai, private)', async () => {
    const res = await t.http.get('/v1/me/provider').set(ada.auth).expect(200);
    expect(res.body).toMatchObject({ id: null, publicSlug: null, isPublic: false, timezone: 'Asia/Dubai', settings: {} });
  });

  it('saves slug, visibility, time zone and settings, merges setting groups, and audits', async () => {
    const first = await patch(ada, {
      publicSlug: 'ada-lovelace', isPublic: true, timezone: 'Europe/London',
      settings: { workingHours: { timezone: 'Europe/London', days: [1, 2, 3], start: '08:30', end: '15:00' } },
    }).expect(200);
    expect(first.body).toMatchObject({ publicSlug: 'ada-lovelace', isPublic: true, timezone: 'Europe/London', id: expect.any(String) });
    const second = await patch(ada, { settings: { whatsapp: WHATSAPP } }).expect(200);
    expect(second.body.settings).toEqual({
      workingHours: { timezone: 'Europe/London', days: [1, 2, 3], start: '08:30', end: '15:00' }, whatsapp: WHATSAPP,
    });
    expect(second.body.publicSlug).toBe('ada-lovelace');
    const { rows } = await t.db.admin.query(`SELECT action FROM core.audit_logs WHERE org_id = $1 AND entity_type = 'provider' ORDER BY id`, [ada.personalOrgId]);
    expect(rows.map((r) => r.action)).toEqual(['provider.created', 'provider.updated']);
  });

  it.each([
    [{ publicSlug: 'Ada' }, 'publicSlug'],
    [{ publicSlug: 'ada--x' }, 'publicSlug'],
    [{ publicSlug: '-ada' }, 'publicSlug'],
    [{ timezone: 'Mars/Olympus' }, 'timezone'],
    [{ isPublic: 'yes' }, 'isPublic'],
    [{ settings: { workingHours: { timezone: 'Asia/Dubai', days: [0, 8], start: '09:00', end: '17:00' } } }, 'settings.workingHours.days'],
    [{ settings: { workingHours: { timezone: 'Nowhere/Land', days: [1], start: '09:00', end: '17:00' } } }, 'settings.workingHours.timezone'],
    [{ settings: { workingHours: { timezone: 'Asia/Dubai', days: [1], start: '9:00', end: '25:00' } } }, 'settings.workingHours.start'],
    [{ settings: { whatsapp: { ...WHATSAPP, phoneE164: '0501234567' } } }, 'settings.whatsapp.phoneE164'],
    [{ settings: { whatsapp: { ...WHATSAPP, messageTemplate: 'Book {date}?' } } }, 'settings.whatsapp.messageTemplate'],
    [{ settings: { whatsapp: { enabled: true } } }, 'settings.whatsapp.phoneE164'],
    [{ settings: { calendar: { selectedCalendarIds: ['not a url'] } } }, 'settings.calendar.selectedCalendarIds'],
    [{ settings: { colour: 'red' } }, 'settings.colour'],
  ])('rejects %j naming %s', async (body, field) => {
    const res = await patch(bob, body).expect(400);
    expect(res.body.error.details.map((d: any) => d.field)).toContain(field);
  });

  it('refuses a calendar URL with a user name or password (400 naming the field): credentials are the integration\'s secret', async () => {
    for (const url of ['https://ada%40example.com:Sup3r-Secret@caldav.icloud.com/1/calendars/home/', 'https://ada@caldav.icloud.com/1/calendars/home/']) {
      const res = await patch(bob, { settings: { calendar: { selectedCalendarIds: ['https://caldav.icloud.com/1/calendars/work/', url] } } }).expect(400);
      expect(res.body.error).toMatchObject({
        code: 'validation_failed',
        details: [{ field: 'settings.calendar.selectedCalendarIds', problems: ['each selectedCalendarIds entry must be a calendar URL without a user name or password (the credentials go in the integration\'s secret)'] }],
      });
      expect(res.text).not.toContain('Sup3r-Secret');
    }
    expect((await t.http.get('/v1/me/provider').set(bob.auth).expect(200)).body.settings).toEqual({});
  });

  it('refuses reserved slugs, hours that end before they start, a public profile without a slug, and a taken slug', async () => {
    expect((await patch(bob, { publicSlug: 'admin' }).expect(400)).body.error.code).toBe('provider.slug_reserved');
    const hours = await patch(bob, { settings: { workingHours: { timezone: 'Asia/Dubai', days: [1], start: '17:00', end: '09:00' } } }).expect(400);
    expect(hours.body.error.message).toMatch(/start must be before/);
    expect((await patch(bob, { isPublic: true }).expect(400)).body.error.code).toBe('provider.slug_required');
    expect((await patch(bob, { publicSlug: 'ada-lovelace' }).expect(409)).body.error.code).toBe('provider.slug_taken');
    // nothing half-written
    expect((await t.http.get('/v1/me/provider').set(bob.auth).expect(200)).body.id).toBeNull();
  });

  it("keeps each user's provider to themselves", async () => {
    await patch(bob, { publicSlug: 'bob-builder', timezone: 'Asia/Dubai' }).expect(200);
    const mine = await t.http.get('/v1/me/provider').set(bob.auth).expect(200);
    expect(mine.body.publicSlug).toBe('bob-builder');
    const ada1 = await t.http.get('/v1/me/provider').set(ada.auth).expect(200);
    expect(ada1.body.publicSlug).toBe('ada-lovelace');
    expect(ada1.text).not.toContain(bob.id);
  });
});

describe('public provider pages and availability', () => {
  let t: TestApp;
  let ny: TestUser;
  let dubai: TestUser;
  let hidden: TestUser;
  let london: TestUser;
  let caldav: CalDavDouble;
  const calPassword = 'icloud-app-pw-x91k-never-shown';

  beforeAll(async () => {
    // availability is asked from yesterday to HORIZON_DAYS ahead: the ranges below, 2030-01-05 to 2030-03-31, from here
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env }, { clock: ManualClock.at('2030-01-04T12:00:00Z') });
    [ny, dubai, hidden, london] = [await registerUser(t, 'ny'), await registerUser(t, 'dubai'), await registerUser(t, 'hidden'), await registerUser(t, 'london')];
    await t.http.patch('/v1/me/provider').set(ny.auth).send({
      publicSlug: 'new-york-coach', isPublic: true, timezone: 'America/New_York',
      settings: { workingHours: { timezone: 'America/New_York', days: ALL_DAYS, start: '09:00', end: '12:00' }, whatsapp: WHATSAPP },
    }).expect(200);
    await t.http.patch('/v1/me/provider').set(dubai.auth).send({
      publicSlug: 'dubai-trainer', isPublic: true,
      settings: { workingHours: { timezone: 'Asia/Dubai', days: [1, 2, 3, 4, 5], start: '09:00', end: '17:00' } },
    }).expect(200);
    await t.http.patch('/v1/me/provider').set(hidden.auth).send({
      publicSlug: 'private-person', isPublic: false,
      settings: { workingHours: { timezone: 'Asia/Dubai', days: ALL_DAYS, start: '09:00', end: '17:00' } },
    }).expect(200);
    await t.http.patch('/v1/me/provider').set(london.auth).send({
      publicSlug: 'london-tutor', isPublic: true, timezone: 'Europe/London',
      settings: { workingHours: { timezone: 'Europe/London', days: ALL_DAYS, start: '09:00', end: '11:00' } },
    }).expect(200);
    caldav = await startCalDavDouble({ username: 'ny@example.com', password: calPassword });
  });
  afterAll(async () => {
    await caldav.close();
    await t.close();
  });

  const availability = (slug: string, query: string) => t.http.get(`/v1/public/providers/${slug}/availability?${query}`);

  it('serves anonymous requests on pooled connections that have served signed-in ones', async () => {
    // begin_request() runs for every request; on a connection whose cached plan reads core.sessions
    // (signed-in callers with a session), an anon caller must still get through
    for (let i = 0; i < 10; i++) {
      const mine = await t.http.get('/v1/me/provider').set(ny.auth).expect(200);
      expect(mine.body).toMatchObject({ id: expect.any(String), publicSlug: 'new-york-coach', isPublic: true, timezone: 'America/New_York' });
    }
    for (let i = 0; i < 10; i++) {
      const res = await t.http.get('/v1/public/providers/dubai-trainer').expect(200);
      expect(res.body).toEqual({
        slug: 'dubai-trainer', timezone: 'Asia/Dubai', // the default zone: not set
        workingHours: { timezone: 'Asia/Dubai', days: [1, 2, 3, 4, 5], start: '09:00', end: '17:00' },
        whatsapp: null,
      });
    }
  });

  it('shows only the public profile of a public provider, without authentication', async () => {
    await t.http.patch('/v1/me/provider').set(ny.auth).send({ settings: { calendar: { selectedCalendarIds: [`${caldav.url}/calendars/home/`] } } }).expect(200);
    const res = await t.http.get('/v1/public/providers/new-york-coach').expect(200);
    expect(res.body).toEqual({
      slug: 'new-york-coach', timezone: 'America/New_York',
      workingHours: { timezone: 'America/New_York', days: ALL_DAYS, start: '09:00', end: '12:00' },
      whatsapp: { enabled: true, phoneE164: '+971500000000' },
    });
    expect(res.text).not.toContain(ny.id);
    expect(res.text).not.toContain('calendars/home');
  });

  it('answers the same 404 for an unknown and a private slug', async () => {
    const unknown = await t.http.get('/v1/public/providers/no-such-slug').expect(404);
    const hiddenRes = await t.http.get('/v1/public/providers/private-person').expect(404);
    const strip = (b: any) => ({ ...b, requestId: undefined });
    expect(strip(hiddenRes.body)).toEqual(strip(unknown.body));
    expect(hiddenRes.body.error).toEqual({ code: 'provider.not_found', message: 'provider was not found' });
    await availability('private-person', 'from=2030-01-07&to=2030-01-07').expect(404);
    await t.http.get('/v1/public/providers/Not_A_Slug').expect(404);
  });

  it('computes slots in Asia/Dubai (UTC+4, no daylight saving) on working days only', async () => {
    // 2030-01-05 is a Saturday, 2030-01-07 a Monday
    const res = await availability('dubai-trainer', 'from=2030-01-05&to=2030-01-07').expect(200);
    expect(res.body).toMatchObject({ timezone: 'Asia/Dubai', durationMinutes: 60 });
    expect(res.body.slots).toHaveLength(8);
    expect(res.body.slots[0]).toEqual({ start: '2030-01-07T05:00:00.000Z', end: '2030-01-07T06:00:00.000Z', date: '2030-01-07', time: '09:00' });
    expect(res.body.slots[7]).toMatchObject({ start: '2030-01-07T12:00:00.000Z', time: '16:00' });
    const half = await availability('dubai-trainer', 'from=2030-01-07&to=2030-01-07&duration=30').expect(200);
    expect(half.body.slots).toHaveLength(16);
  });

  it('keeps local working hours across the New York daylight-saving change, with WhatsApp links', async () => {
    await t.http.patch('/v1/me/provider').set(ny.auth).send({ settings: { calendar: { selectedCalendarIds: [] } } }).expect(200);
    // 2030-03-10: clocks go from 02:00 EST (UTC-5) to 03:00 EDT (UTC-4)
    const res = await availability('new-york-coach', 'from=2030-03-09&to=2030-03-11').expect(200);
    const starts = res.body.slots.filter((s: any) => s.time === '09:00').map((s: any) => [s.date, s.start]);
    expect(starts).toEqual([
      ['2030-03-09', '2030-03-09T14:00:00.000Z'],
      ['2030-03-10', '2030-03-10T13:00:00.000Z'],
      ['2030-03-11', '2030-03-11T13:00:00.000Z'],
    ]);
    expect(res.body.slots).toHaveLength(9);
    expect(res.body.slots[3].whatsappUrl).toBe('https://wa.me/971500000000?text=Hi!%20Can%20I%20book%202030-03-10%20at%2009%3A00%3F');
  });

  it('keeps local working hours across the London change to summer time', async () => {
    // 2030-03-31: 01:00 GMT becomes 02:00 BST
    const res = await availability('london-tutor', 'from=2030-03-30&to=2030-03-31').expect(200);
    expect(res.body.slots.map((s: any) => s.start)).toEqual([
      '2030-03-30T09:00:00.000Z', '2030-03-30T10:00:00.000Z', '2030-03-31T08:00:00.000Z', '2030-03-31T09:00:00.000Z',
    ]);
    expect(res.body.slots[0].whatsappUrl).toBeUndefined();
  });

  it.each([
    ['', 'from'],
    ['from=2030-01-07', 'to'],
    ['from=2030-02-30&to=2030-03-01', 'from'],
    ['from=07-01-2030&to=2030-01-08', 'from'],
    ['from=2030-01-08&to=2030-01-07', 'before'],
    ['from=2030-01-01&to=2030-02-01', '31 days'],
    ['from=2030-01-01&to=2030-01-02&duration=5', 'duration'],
  ])('answers 400 to ?%s naming %s', async (query, word) => {
    const res = await availability('dubai-trainer', query).expect(400);
    expect(JSON.stringify(res.body.error)).toContain(word);
  });

  it('subtracts busy times read from the connected CalDAV calendar (UTC, TZID and all-day forms)', async () => {
    caldav.calendars.set('/calendars/home/', [
      // UTC form: 2030-03-11 14:30-15:10Z = 10:30-11:10 EDT, blocks the 10:00 and 11:00 slots
      'BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20300311T143000Z\r\nDTEND:20300311T151000Z\r\nSUMMARY:Client\r\nEND:VEVENT',
      // TZID form, folded line: 09:00-10:00 New York time on 2030-03-12
      'BEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=America/New_York:20300312T090000\r\nDTEND;TZID=America/New_\r\n York:20300312T100000\r\nEND:VEVENT',
      // cancelled and transparent events do not block
      'BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20300312T150000Z\r\nDTEND:20300312T160000Z\r\nSTATUS:CANCELLED\r\nEND:VEVENT',
      'BEGIN:VEVENT\r\nUID:d\r\nDTSTART:20300312T160000Z\r\nDTEND:20300312T170000Z\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT',
    ]);
    caldav.calendars.set('/calendars/work/', [
      // all day on 2030-03-13 (provider's zone)
      'BEGIN:VEVENT\r\nUID:e\r\nDTSTART;VALUE=DATE:20300313\r\nDTEND;VALUE=DATE:20300314\r\nEND:VEVENT',
    ]);
    const { body: integration } = await t.http.post('/v1/me/integrations').set(ny.auth).send({ integrationType: 'caldav', label: 'iCloud' }).expect(201);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(ny.auth)
      .send({ credentials: { username: 'ny@example.com', password: calPassword, serverUrl: caldav.url } }).expect(200);
    await t.http.patch('/v1/me/provider').set(ny.auth).send({
      settings: { calendar: { selectedCalendarIds: [`${caldav.url}/calendars/home/`, `${caldav.url}/calendars/work/`, 'https://elsewhere.example/cal/'] } },
    }).expect(200);
    caldav.requests.length = 0;

    const res = await availability('new-york-coach', 'from=2030-03-11&to=2030-03-13').expect(200);
    expect(res.body.slots.map((s: any) => `${s.date} ${s.time}`)).toEqual([
      '2030-03-11 09:00',
      '2030-03-12 10:00', '2030-03-12 11:00',
    ]);
    // one REPORT per calendar on the credentials' server, none to another origin
    expect(caldav.requests.map((r) => [r.method, r.path, r.depth])).toEqual([
      ['REPORT', '/calendars/home/', '1'], ['REPORT', '/calendars/work/', '1'],
    ]);
    expect(caldav.requests[0].authorization).toBe('Basic ' + Buffer.from(`ny@example.com:${calPassword}`).toString('base64'));
    // the provider's whole window, whatever range was asked: yesterday (2030-01-03, EST) to 92 days after today (2030-04-06, EDT) in its zone
    expect(caldav.requests[0].body).toContain('<C:time-range start="20300103T050000Z" end="20300407T040000Z"/>');
    expect(res.text).not.toContain(calPassword);
  });

  it('reads 30 calendars with two integrations on one server (iCloud, and CalDAV at caldav.icloud.com): 60 asks, busy times merged', async () => {
    const coach = await registerUser(t, 'two-integrations');
    const icloud = 'https://caldav.icloud.com';
    const paths = Array.from({ length: 30 }, (_, i) => `/1/calendars/c${i}/`);
    for (const path of paths) caldav.calendars.set(path, []);
    caldav.calendars.set(paths[0], ['BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20300311T090000Z\r\nDTEND:20300311T100000Z\r\nEND:VEVENT']);
    caldav.calendars.set(paths[29], ['BEGIN:VEVENT\r\nUID:g\r\nDTSTART:20300311T110000Z\r\nDTEND:20300311T120000Z\r\nEND:VEVENT']);
    // the same account connected twice: the double knows one
    for (const [integrationType, server] of [['icloud', {}], ['caldav', { serverUrl: icloud }]] as const) {
      const { body: integration } = await t.http.post('/v1/me/integrations').set(coach.auth).send({ integrationType }).expect(201);
      await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(coach.auth)
        .send({ credentials: { username: 'ny@example.com', password: calPassword, ...server } }).expect(200);
    }
    await t.http.patch('/v1/me/provider').set(coach.auth).send({
      publicSlug: 'two-integrations-coach', isPublic: true, timezone: 'UTC',
      settings: { workingHours: { timezone: 'UTC', days: ALL_DAYS, start: '09:00', end: '12:00' }, calendar: { selectedCalendarIds: paths.map((p) => `${icloud}${p}`) } },
    }).expect(200);
    // TEST DOUBLE: iCloud's server is the CalDAV double
    const service = t.app.get(PublicProvidersService);
    const outbound = Reflect.get(service, 'fetch') as typeof fetch;
    Reflect.set(service, 'fetch', ((url: URL, init: RequestInit) => outbound(new URL(url.pathname, caldav.url), init)) as typeof fetch);
    caldav.requests.length = 0;
    try {
      const res = await availability('two-integrations-coach', 'from=2030-03-11&to=2030-03-11').expect(200);
      expect(res.body.slots.map((s: any) => s.time)).toEqual(['10:00']);
    } finally {
      Reflect.set(service, 'fetch', outbound);
    }
    expect(caldav.requests.map((r) => r.path).sort()).toEqual([...paths, ...paths].sort());
  });

  it('answers 503 without slots, and without the credentials, when the calendar refuses them', async () => {
    const { body: [integration] } = await t.http.get('/v1/me/integrations').set(ny.auth).expect(200);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(ny.auth)
      .send({ credentials: { username: 'ny@example.com', password: `${calPassword}-wrong`, serverUrl: caldav.url } }).expect(200);
    const res = await availability('new-york-coach', 'from=2030-03-11&to=2030-03-11').expect(503);
    expect(res.body.error.code).toBe('availability.calendar_unavailable');
    expect(res.text).not.toContain(calPassword);
    // a disabled integration is not asked
    await t.http.patch(`/v1/me/integrations/${integration.id}`).set(ny.auth).send({ status: 'disabled' }).expect(200);
    const open = await availability('new-york-coach', 'from=2030-03-11&to=2030-03-11').expect(200);
    expect(open.body.slots).toHaveLength(3);
  });
});

/**
 * public.providers is writable over REST by its owner (seed 004): the database refuses there what the API refuses
 * (20270210360100), and rows written before that are read with their malformed groups as not set.
 */
describe('provider rows written over REST', () => {
  let t: TestApp;
  let ada: TestUser;
  let caldav: CalDavDouble;
  const HOURS = { timezone: 'UTC', days: [1, 2, 3, 4, 5], start: '09:00', end: '11:00' };
  const lines: string[] = [];

  beforeAll(async () => {
    const logs = new Writable({ write: (chunk: Buffer, _e, done) => done(void lines.push(...chunk.toString().split('\n').filter(Boolean))) });
    t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, LOG_LEVEL: 'warn' }, { logDestination: logs, clock: ManualClock.at('2030-01-04T12:00:00Z') });
    ada = await registerUser(t, 'ada-rest');
    caldav = await startCalDavDouble({ username: 'ada@example.com', password: 'pw' });
    await t.http.patch('/v1/me/provider').set(ada.auth).send({ publicSlug: 'ada-rest', isPublic: true, timezone: 'UTC', settings: { workingHours: HOURS, whatsapp: WHATSAPP } }).expect(200);
  });
  afterAll(async () => {
    await caldav.close();
    await t.close();
  });

  const asOwner = (sql: string, params: unknown[] = []) => t.db.as({ sub: ada.id, role: 'authenticated' }, 'authenticated', sql, params);
  const stored = async () => (await t.db.admin.query(`SELECT public_slug, timezone, settings FROM public.providers WHERE owner_user_id = $1`, [ada.id])).rows[0];
  /** a row as written before the database checked them: the check switched off for one statement */
  const legacyWrite = (set: string) => t.db.admin.query(`ALTER TABLE public.providers DISABLE TRIGGER providers_check;
    UPDATE public.providers SET ${set} WHERE owner_user_id = '${ada.id}';
    ALTER TABLE public.providers ENABLE TRIGGER providers_check;`);

  it.each([
    ['settings.workingHours.days must be an array', { workingHours: { ...HOURS, days: 5 } }, 'validation_failed'],
    ['settings.workingHours.days must be ISO weekdays', { workingHours: { ...HOURS, days: [1, 8] } }, 'validation_failed'],
    ['settings.workingHours.timezone must be an IANA time zone', { workingHours: { ...HOURS, timezone: 'Nowhere/Land' } }, 'validation_failed'],
    ['settings.workingHours.start must be before settings.workingHours.end', { workingHours: { ...HOURS, start: '17:00' } }, 'provider.working_hours_invalid'],
    ['settings.workingHours must be an object', { workingHours: 'weekdays' }, 'validation_failed'],
    ['settings.whatsapp.phoneE164 must be a phone number', { whatsapp: { ...WHATSAPP, phoneE164: 971500000000 } }, 'validation_failed'],
    ['settings.whatsapp.messageTemplate must be', { whatsapp: { ...WHATSAPP, messageTemplate: 'Book {date}' } }, 'validation_failed'],
    ['settings.whatsapp.enabled must be true or false', { whatsapp: { enabled: 'yes' } }, 'validation_failed'],
    ['holds 51 calendars, more than 50', { calendar: { selectedCalendarIds: Array.from({ length: 51 }, (_, i) => `https://caldav.icloud.com/c${i}/`) } }, 'validation_failed'],
    ['must be an http or https calendar URL', { calendar: { selectedCalendarIds: ['ftp://files.example.com/cal/'] } }, 'validation_failed'],
    ['must be a calendar URL without a user name or password', { calendar: { selectedCalendarIds: ['https://ada:Sup3r-Secret@caldav.icloud.com/1/'] } }, 'validation_failed'],
    ['must be a calendar URL without a user name or password', { calendar: { selectedCalendarIds: ['https://\\ada:Sup3r-Secret@caldav.icloud.com/1/'] } }, 'validation_failed'],
    ['settings.colour is not a settings group', { colour: 'red' }, 'validation_failed'],
  ])('refuses over REST what the API refuses: %s; the row unchanged', async (message, settings, hint) => {
    const before = await stored();
    await expect(asOwner(`UPDATE public.providers SET settings = settings || $1::jsonb RETURNING id`, [JSON.stringify(settings)]))
      .rejects.toMatchObject({ code: '23514', hint, message: expect.stringContaining(message) });
    expect(await stored()).toEqual(before);
  });

  it('refuses every reserved slug, a malformed slug and an unknown time zone over REST, as the API does', async () => {
    for (const slug of RESERVED_SLUGS) {
      await expect(asOwner(`UPDATE public.providers SET public_slug = $1 RETURNING id`, [slug]))
        // as in the API, the shape first: `c` is too short to be reserved
        .rejects.toMatchObject(slug.length < 3 ? { code: '23514', hint: 'validation_failed' }
          : { code: '23514', hint: 'provider.slug_reserved', message: `publicSlug "${slug}" is reserved; choose another` });
    }
    await expect(asOwner(`UPDATE public.providers SET public_slug = 'Ada_REST' RETURNING id`)).rejects.toMatchObject({ code: '23514', hint: 'validation_failed' });
    await expect(asOwner(`UPDATE public.providers SET timezone = 'Nowhere/Land' RETURNING id`)).rejects.toMatchObject({ code: '23514', hint: 'validation_failed' });
    // a new row is checked whole
    const other = await registerUser(t, 'admin-claimer');
    await expect(t.db.as({ sub: other.id, role: 'authenticated' }, 'authenticated', `INSERT INTO public.providers (owner_user_id, public_slug, is_public) VALUES ($1, 'admin', true)`, [other.id]))
      .rejects.toMatchObject({ code: '23514', hint: 'provider.slug_reserved' });
    expect((await t.db.admin.query(`SELECT count(*)::int AS n FROM public.providers WHERE public_slug = 'admin'`)).rows[0].n).toBe(0);
    expect((await stored()).public_slug).toBe('ada-rest');
    // what the API writes passes, and what it refuses it still answers as before
    expect(await asOwner(`UPDATE public.providers SET settings = settings || $1::jsonb, timezone = 'Europe/London' RETURNING timezone`,
      [JSON.stringify({ whatsapp: { enabled: false }, calendar: { selectedCalendarIds: [] } })])).toEqual([{ timezone: 'Europe/London' }]);
    expect((await t.http.patch('/v1/me/provider').set(ada.auth).send({ publicSlug: 'admin' }).expect(400)).body.error.code).toBe('provider.slug_reserved');
  });

  it('reads groups written before the check as not set: no 500, no shape the schema does not promise; other groups stay editable', async () => {
    await legacyWrite(`timezone = 'UTC', settings = '${JSON.stringify({ workingHours: { ...HOURS, days: 5 }, whatsapp: { ...WHATSAPP, phoneE164: 971500000000 }, colour: 'red' })}'`);
    const profile = await t.http.get('/v1/public/providers/ada-rest').expect(200);
    expect(profile.body).toEqual({ slug: 'ada-rest', timezone: 'UTC', workingHours: null, whatsapp: null });
    const slots = await t.http.get('/v1/public/providers/ada-rest/availability?from=2030-01-07&to=2030-01-08').expect(200);
    expect(slots.body).toMatchObject({ timezone: 'UTC', slots: [] });
    expect((await t.http.get('/v1/me/provider').set(ada.auth).expect(200)).body.settings).toEqual({});

    await legacyWrite(`settings = '{"workingHours": "weekdays", "whatsapp": {"enabled": true, "phoneE164": "+971500000000", "messageTemplate": 7}}'`);
    expect((await t.http.get('/v1/public/providers/ada-rest').expect(200)).body).toMatchObject({ workingHours: null, whatsapp: null });
    await t.http.get('/v1/public/providers/ada-rest/availability?from=2030-01-07&to=2030-01-07').expect(200);

    // the API replaces one group of such a row without being refused for the others, which stay unread
    const saved = await t.http.patch('/v1/me/provider').set(ada.auth).send({ settings: { workingHours: HOURS } }).expect(200);
    expect(saved.body.settings).toEqual({ workingHours: HOURS });
    expect((await stored()).settings).toEqual({ workingHours: HOURS, whatsapp: { enabled: true, phoneE164: '+971500000000', messageTemplate: 7 } });
    const open = await t.http.get('/v1/public/providers/ada-rest/availability?from=2030-01-07&to=2030-01-07').expect(200);
    expect(open.body.slots.map((s: { time: string }) => s.time)).toEqual(['09:00', '10:00']);
    expect(open.body.slots[0].whatsappUrl).toBeUndefined();
  });

  it.each([['an array', '[]'], ['a string', '"weekdays"']])('edits a row whose settings are %s (written before the check): another field leaves them, settings given replace them', async (_, legacy) => {
    const cy = await registerUser(t, 'cy-rest');
    await t.http.patch('/v1/me/provider').set(cy.auth).send({ timezone: 'UTC' }).expect(200);
    await t.db.admin.query(`ALTER TABLE public.providers DISABLE TRIGGER providers_check;
      UPDATE public.providers SET settings = '${legacy}'::jsonb WHERE owner_user_id = '${cy.id}';
      ALTER TABLE public.providers ENABLE TRIGGER providers_check;`);
    const row = async () => (await t.db.admin.query(`SELECT timezone, settings FROM public.providers WHERE owner_user_id = $1`, [cy.id])).rows[0];
    expect((await t.http.get('/v1/me/provider').set(cy.auth).expect(200)).body.settings).toEqual({});
    // not touching settings: they stay as stored (read as not set), the check has nothing to refuse
    const moved = await t.http.patch('/v1/me/provider').set(cy.auth).send({ timezone: 'Europe/Berlin' }).expect(200);
    expect(moved.body).toMatchObject({ timezone: 'Europe/Berlin', settings: {} });
    expect(await row()).toEqual({ timezone: 'Europe/Berlin', settings: JSON.parse(legacy) });
    // groups given replace what cannot hold groups (no `[..., {}]` the check refuses)
    const saved = await t.http.patch('/v1/me/provider').set(cy.auth).send({ settings: { whatsapp: { enabled: false } } }).expect(200);
    expect(saved.body.settings).toEqual({ whatsapp: { enabled: false } });
    expect(await row()).toEqual({ timezone: 'Europe/Berlin', settings: { whatsapp: { enabled: false } } });
  });

  it('answers 503 rather than ignore calendar settings it cannot read (more than 50 calendars): no calendar is asked', async () => {
    const { body: integration } = await t.http.post('/v1/me/integrations').set(ada.auth).send({ integrationType: 'caldav' }).expect(201);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(ada.auth)
      .send({ credentials: { username: 'ada@example.com', password: 'pw', serverUrl: caldav.url } }).expect(200);
    caldav.calendars.set('/calendars/c0/', []);
    const ids = Array.from({ length: 500 }, (_, i) => `${caldav.url}/calendars/c${i}/`);
    await legacyWrite(`settings = settings || '${JSON.stringify({ calendar: { selectedCalendarIds: ids } })}'`);
    caldav.requests.length = 0;
    const res = await t.http.get('/v1/public/providers/ada-rest/availability?from=2030-01-07&to=2030-01-07').expect(503);
    expect(res.body.error.code).toBe('availability.calendar_unavailable');
    expect(caldav.requests).toEqual([]);
    await t.http.patch('/v1/me/provider').set(ada.auth).send({ settings: { calendar: { selectedCalendarIds: [`${caldav.url}/calendars/c0/`] } } }).expect(200);
    expect((await t.http.get('/v1/public/providers/ada-rest/availability?from=2030-01-07&to=2030-01-07').expect(200)).body.slots).toHaveLength(2);
    expect(caldav.requests.map((r) => r.path)).toEqual(['/calendars/c0/']);
  });

  it('reads a calendar URL with a password stored before the check as malformed settings: 503, the password in no log line', async () => {
    const dee = await registerUser(t, 'dee-rest');
    const { body: integration } = await t.http.post('/v1/me/integrations').set(dee.auth).send({ integrationType: 'icloud' }).expect(201);
    await t.http.put(`/v1/me/integrations/${integration.id}/secret`).set(dee.auth).send({ credentials: { username: 'dee@example.com', password: 'pw' } }).expect(200);
    await t.http.patch('/v1/me/provider').set(dee.auth).send({ publicSlug: 'dee-rest', isPublic: true, timezone: 'UTC', settings: { workingHours: HOURS } }).expect(200);
    const calendar = { selectedCalendarIds: ['https://dee%40example.com:Sup3r-Secret@caldav.icloud.com/1/calendars/home/'] };
    await t.db.admin.query(`ALTER TABLE public.providers DISABLE TRIGGER providers_check;
      UPDATE public.providers SET settings = settings || '${JSON.stringify({ calendar })}' WHERE owner_user_id = '${dee.id}';
      ALTER TABLE public.providers ENABLE TRIGGER providers_check;`);
    lines.length = 0;
    const res = await t.http.get('/v1/public/providers/dee-rest/availability?from=2030-01-07&to=2030-01-07').expect(503);
    expect(res.body.error.code).toBe('availability.calendar_unavailable');
    const warned = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'calendar busy times unavailable');
    expect(warned.map((l) => [l.integrationIds, l.reason])).toEqual([[[integration.id], 'the calendar settings are malformed']]);
    expect(lines.filter((l) => l.includes('Sup3r-Secret'))).toEqual([]);
    // the owner's own reading of the settings leaves the group out, as any the API would not have saved
    expect((await t.http.get('/v1/me/provider').set(dee.auth).expect(200)).body.settings).toEqual({ workingHours: HOURS });
  });

  it('checks stored credentials again when opening them: a type switched over REST does not send unchecked ones', async () => {
    const bea = await registerUser(t, 'bea-rest');
    await t.http.patch('/v1/me/provider').set(bea.auth).send({
      publicSlug: 'bea-rest', isPublic: true, timezone: 'UTC', settings: { workingHours: HOURS, calendar: { selectedCalendarIds: [`${caldav.url}/calendars/c0/`] } },
    }).expect(200);
    // accepted for a type without CalDAV rules, refused for caldav (an unknown field)
    const { body: other } = await t.http.post('/v1/me/integrations').set(bea.auth).send({ integrationType: 'other' }).expect(201);
    const credentials = { username: 'ada@example.com', password: 'pw', serverUrl: caldav.url, extra: 'x' };
    await t.http.put(`/v1/me/integrations/${other.id}/secret`).set(bea.auth).send({ credentials }).expect(200);
    expect(await t.db.as({ sub: bea.id, role: 'authenticated' }, 'authenticated',
      `UPDATE public.integrations SET integration_type = 'caldav' WHERE id = $1 RETURNING integration_type`, [other.id])).toEqual([{ integration_type: 'caldav' }]);
    caldav.requests.length = 0;
    const res = await t.http.get('/v1/public/providers/bea-rest/availability?from=2030-01-07&to=2030-01-07').expect(503);
    expect(res.body.error.code).toBe('availability.calendar_unavailable');
    expect(caldav.requests).toEqual([]); // the credentials were not sent
  });
});
