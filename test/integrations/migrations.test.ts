import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { migrate } from '../../src/platform/database/migrator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const BEFORE_PROVIDERS = '20260401000100_integrations';

describe('seed 004 data movement: providers backfilled, selected_calendar_ids moved into settings', () => {
  let db: TestDatabase;
  const [withCalendars, withoutCalendars, noIntegrations] = [randomUUID(), randomUUID(), randomUUID()];

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: BEFORE_PROVIDERS, log: () => undefined });
  });
  afterAll(() => db.drop());

  it('applies the rest over old-shaped rows and checks the result', async () => {
    const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
    expect((await q(`SELECT to_regclass('public.providers') AS t`)).rows[0].t).toBeNull();
    for (const id of [withCalendars, withoutCalendars, noIntegrations]) {
      await q('INSERT INTO auth.users (id, email) VALUES ($1, $2)', [id, `${id}@example.test`]);
    }
    await q(`INSERT INTO public.integrations (user_id, integration_type, label, selected_calendar_ids) VALUES
      ($1, 'icloud', 'Personal iCloud', ARRAY['https://caldav.icloud.com/1/calendars/work/', 'https://caldav.icloud.com/1/calendars/home/']),
      ($1, 'google', NULL, ARRAY['https://caldav.icloud.com/1/calendars/home/', 'google:primary']),
      ($2, 'icloud', NULL, NULL)`, [withCalendars, withoutCalendars]);
    await q(`INSERT INTO public.integration_secrets (integration_id, secret)
      SELECT id, '{"ciphertext":"c","iv":"i","tag":"t","kid":"k1"}' FROM public.integrations WHERE user_id = $1 AND integration_type = 'icloud'`, [withCalendars]);

    const applied = await migrate(db.url, { log: () => undefined });
    expect(applied[0]).toBe('20260401000200_providers');

    const { rows: providers } = await q('SELECT owner_user_id, public_slug, is_public, timezone, settings FROM public.providers ORDER BY owner_user_id');
    expect(providers).toHaveLength(2); // one per integrations.user_id, none for a user without integrations
    const byOwner = Object.fromEntries(providers.map((p) => [p.owner_user_id, p]));
    expect(byOwner[withCalendars]).toEqual({
      owner_user_id: withCalendars, public_slug: null, is_public: false, timezone: 'Asia/Dubai',
      settings: { calendar: { selectedCalendarIds: ['google:primary', 'https://caldav.icloud.com/1/calendars/home/', 'https://caldav.icloud.com/1/calendars/work/'] } },
    });
    expect(byOwner[withoutCalendars].settings).toEqual({});
    expect(byOwner[noIntegrations]).toBeUndefined();
    const { rows: columns } = await q(`SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'integrations' AND column_name = 'selected_calendar_ids'`);
    expect(columns).toEqual([]);
    // the rest of the rows is untouched
    const { rows: kept } = await q(`SELECT i.integration_type, i.label, s.secret ->> 'kid' AS kid FROM public.integrations i LEFT JOIN public.integration_secrets s ON s.integration_id = i.id WHERE i.user_id = $1 ORDER BY 1`, [withCalendars]);
    expect(kept).toEqual([{ integration_type: 'google', label: null, kid: null }, { integration_type: 'icloud', label: 'Personal iCloud', kid: 'k1' }]);
  });
});

describe('20270211003100: integrations.status checked, rows holding another status set to disabled', () => {
  let db: TestDatabase;
  const user = randomUUID();

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: '20270211002900_opening_balance_rules', log: () => undefined });
  });
  afterAll(() => db.drop());

  it('sets what was never read (only active integrations were) to disabled, keeps the rest, then refuses another status', async () => {
    const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
    await q('INSERT INTO auth.users (id, email) VALUES ($1, $2)', [user, `${user}@example.test`]);
    const statuses = { icloud: 'active', caldav: 'disabled', google: 'error', stripe: 'paused', zoom: 'Active', other: '' };
    for (const [type, status] of Object.entries(statuses)) {
      await q(`INSERT INTO public.integrations (user_id, integration_type, status) VALUES ($1, $2, $3)`, [user, type, status]);
    }
    await migrate(db.url, { log: () => undefined });
    const { rows } = await q('SELECT integration_type, status FROM public.integrations WHERE user_id = $1 ORDER BY integration_type', [user]);
    expect(Object.fromEntries(rows.map((r) => [r.integration_type, r.status]))).toEqual({
      caldav: 'disabled', google: 'error', icloud: 'active', other: 'disabled', stripe: 'disabled', zoom: 'disabled',
    });
    await expect(q(`UPDATE public.integrations SET status = 'paused' WHERE user_id = $1`, [user])).rejects.toMatchObject({ code: '23514', constraint: 'integrations_status_check' });
  });
});

describe('20270211003100: stored calendar URLs lose their user part, each data fix counted in a NOTICE', () => {
  let db: TestDatabase;
  const [withPassword, clean, other] = [randomUUID(), randomUUID(), randomUUID()];

  beforeAll(async () => {
    db = await createTestDatabase({ template: null });
    await migrate(db.url, { until: '20270211002900_opening_balance_rules', log: () => undefined });
  });
  afterAll(() => db.drop());

  it('strips user:password@ from each URL (the rest kept, a repeat kept once), leaves other rows and groups as they were', async () => {
    const q = (sql: string, params: unknown[] = []) => db.admin.query(sql, params);
    for (const id of [withPassword, clean, other]) await q('INSERT INTO auth.users (id, email) VALUES ($1, $2)', [id, `${id}@example.test`]);
    await q(`INSERT INTO public.integrations (user_id, integration_type, status) VALUES ($1, 'caldav', 'paused'), ($2, 'icloud', 'active')`, [withPassword, clean]);
    const hours = { timezone: 'UTC', days: [1, 2, 3], start: '09:00', end: '12:00' };
    const settings = (ids: unknown[]) => JSON.stringify({ workingHours: hours, calendar: { selectedCalendarIds: ids } });
    // written before 20270211003100, when a user part was let through
    await q('INSERT INTO public.providers (owner_user_id, settings) VALUES ($1, $2::jsonb), ($3, $4::jsonb), ($5, $6::jsonb)', [
      withPassword, settings([
        'https://coach:hunter2-secret@cal.example.com/dav/home/?a=1#x',
        'HTTPS://coach%40mail:p%3Aw@cal.example.com:8443/dav/work/',
        'https://cal.example.com/dav/home/?a=1#x',
        'http://cal.example.com/dav/at@sign/',
      ]),
      clean, settings(['https://caldav.icloud.com/1/calendars/home/']),
      other, JSON.stringify({ workingHours: hours }),
    ]);
    const before = (await q('SELECT owner_user_id, settings, updated_at FROM public.providers WHERE owner_user_id <> $1 ORDER BY owner_user_id', [withPassword])).rows;
    const lines: string[] = [];
    await migrate(db.url, { log: (line) => lines.push(line) });

    const { rows: [fixed] } = await q('SELECT settings FROM public.providers WHERE owner_user_id = $1', [withPassword]);
    expect(fixed.settings).toEqual({ workingHours: hours, calendar: { selectedCalendarIds: [
      'https://cal.example.com/dav/home/?a=1#x', 'HTTPS://cal.example.com:8443/dav/work/', 'http://cal.example.com/dav/at@sign/',
    ] } });
    expect(JSON.stringify(fixed.settings)).not.toContain('hunter2');
    expect((await q('SELECT owner_user_id, settings, updated_at FROM public.providers WHERE owner_user_id <> $1 ORDER BY owner_user_id', [withPassword])).rows).toEqual(before);
    expect(lines.filter((l) => l.startsWith('20270211003100'))).toEqual([
      '20270211003100_integration_status_and_calendar_url_checks: NOTICE: 20270211003100: 1 integrations of a status outside active, disabled, error set to disabled',
      '20270211003100_integration_status_and_calendar_url_checks: NOTICE: 20270211003100: 1 providers\' calendar URLs stripped of their user name and password',
    ]);
    // the check is back on: a user part is refused again
    await expect(q(`UPDATE public.providers SET settings = $2::jsonb WHERE owner_user_id = $1`, [clean, settings(['https://u:p@cal.example.com/x/'])]))
      .rejects.toMatchObject({ code: '23514' });
  });
});
