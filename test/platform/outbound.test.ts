import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isNonPublicAddress, OUTBOUND_RESOLVER_OPTIONS, outboundFetch } from '../../src/platform/http/outbound.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { registerUser, type TestUser } from '../support/factories.js';
import { startCalDavDouble, type CalDavDouble } from '../support/doubles/caldav-double.js';
import { startDnsDouble, type DnsDouble } from '../support/doubles/dns-double.js';
import { testKeys } from '../integrations/keys.js';

describe('outbound requests to user-chosen URLs (server-side request forgery guard)', () => {
  it('tells public from loopback, private, link-local, shared and reserved addresses', () => {
    const nonPublic = ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
      '224.0.0.1', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:8.8.8.8', '64:ff9b::a00:5', 'not-an-address',
      // IPv4-compatible, IPv4-translated, 6to4, Teredo and site-local forms: each can reach an address the others refuse
      '::7f00:1', '::a00:5', '::ffff:0:7f00:1', '2002:7f00:1::1', '2002:a00:5::', '2001:0:4136:e378:8000:63bf:3fff:fdd2', 'fec0::1', 'feff::1'];
    const publicOnes = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2001:4860:4860::8888', '2606:4700:4700::1111', '2001:200::1', '2003::1'];
    expect(nonPublic.filter((a) => !isNonPublicAddress(a))).toEqual([]);
    expect(publicOnes.filter((a) => isNonPublicAddress(a))).toEqual([]);
  });

  describe('against a server on this machine', () => {
    let server: Server;
    let port: number;
    let hits = 0;
    beforeAll(async () => {
      server = createServer((_req, res) => {
        hits++;
        res.end('internal');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('refuses to connect to a non-public address, given as an address or as a name resolving to one', async () => {
      const guarded = outboundFetch(false);
      await expect(guarded(`http://127.0.0.1:${port}/`)).rejects.toMatchObject({ cause: { message: expect.stringMatching(/127\.0\.0\.1 is not a public address/) } });
      await expect(guarded(`http://localhost:${port}/`)).rejects.toMatchObject({ cause: { message: expect.stringMatching(/refused to connect to localhost: .* is not a public address/) } });
      expect(hits).toBe(0);
    });

    it('connects when private networks are allowed (development, tests)', async () => {
      const res = await outboundFetch(true)(`http://127.0.0.1:${port}/`);
      expect(await res.text()).toBe('internal');
      expect(hits).toBe(1);
    });
  });

  describe('names, resolved by the guard itself (a name server double on 127.0.0.1)', () => {
    let dns: DnsDouble;
    let guarded: typeof fetch;
    beforeAll(async () => {
      dns = await startDnsDouble({ 'private.test': ['10.0.0.5'], 'mixed.test': ['8.8.8.8', 'fd00::1'] });
      guarded = outboundFetch(false, undefined, { servers: [dns.server] });
    });
    afterAll(() => dns.close());

    it('checks every address the name server answered, A and AAAA, and never asks it about localhost', async () => {
      await expect(guarded('http://private.test/')).rejects.toMatchObject({ cause: { message: 'refused to connect to private.test: 10.0.0.5 is not a public address' } });
      // a public A record does not cover a private AAAA one
      await expect(guarded('http://mixed.test/')).rejects.toMatchObject({ cause: { message: 'refused to connect to mixed.test: fd00::1 is not a public address' } });
      // RFC 6761: localhost and names under it are loopback, without DNS
      await expect(guarded('http://app.localhost:8080/')).rejects.toMatchObject({ cause: { message: expect.stringMatching(/^refused to connect to app\.localhost: (127\.0\.0\.1|::1) is not a public address$/) } });
      await expect(guarded('http://LOCALHOST./')).rejects.toMatchObject({ cause: { message: expect.stringMatching(/is not a public address$/) } });
      expect([...dns.queries].sort()).toEqual(['A mixed.test', 'A private.test', 'AAAA mixed.test', 'AAAA private.test']);
    });

    it('gives up on a name server that never answers within its bounds, holding no thread of the pool meanwhile', async () => {
      expect(OUTBOUND_RESOLVER_OPTIONS).toEqual({ timeout: 2000, tries: 2, maxTimeout: 2000 });
      // more lookups than libuv's pool has threads (4): with getaddrinfo the file read below would wait behind them
      let settled = 0;
      const sends = Array.from({ length: 8 }, (_, i) => guarded(`http://silent-${i}.test/`).then(
        () => { settled++; return null; },
        (err: Error & { cause?: NodeJS.ErrnoException }) => { settled++; return err.cause?.code; },
      ));
      expect(JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).name).toBeDefined();
      expect(settled).toBe(0); // the pool's work was done while every lookup was still waiting on the silent server
      expect(await Promise.all(sends)).toEqual(Array(8).fill('ETIMEOUT'));
      expect(dns.queries).toEqual(expect.arrayContaining(['A silent-0.test', 'AAAA silent-7.test']));
    }, 30_000);
  });

  describe('CalDAV server URLs when private networks are not allowed (the production default)', () => {
    let t: TestApp;
    let user: TestUser;
    let caldav: CalDavDouble;
    let integrationId: string;
    beforeAll(async () => {
      t = await createTestApp({ SECRETS_KEYS: testKeys('k1').env, OUTBOUND_ALLOW_PRIVATE_NETWORKS: 'false' }, { clock: ManualClock.at('2030-03-10T12:00:00Z') });
      user = await registerUser(t, 'guarded');
      caldav = await startCalDavDouble({ username: 'g@example.com', password: 'pw' });
      caldav.calendars.set('/calendars/home/', []);
      ({ body: { id: integrationId } } = await t.http.post('/v1/me/integrations').set(user.auth).send({ integrationType: 'caldav', label: 'self-hosted' }).expect(201));
    });
    afterAll(async () => {
      await caldav.close();
      await t.close();
    });

    it('refuses a server given as a non-public address when it is saved', async () => {
      for (const serverUrl of ['http://169.254.169.254/latest/', 'http://[::1]:8080/', caldav.url]) {
        const res = await t.http.put(`/v1/me/integrations/${integrationId}/secret`).set(user.auth)
          .send({ credentials: { username: 'g@example.com', password: 'pw', serverUrl } }).expect(400);
        expect(res.body.error.message).toMatch(/credentials.serverUrl names .* which is not a public address/);
      }
    });

    it('never asks a server whose name resolves to a non-public address: no slots, a 503', async () => {
      const serverUrl = caldav.url.replace('127.0.0.1', 'localhost');
      await t.http.put(`/v1/me/integrations/${integrationId}/secret`).set(user.auth)
        .send({ credentials: { username: 'g@example.com', password: 'pw', serverUrl } }).expect(200);
      await t.http.patch('/v1/me/provider').set(user.auth).send({
        publicSlug: 'guarded-coach', isPublic: true,
        settings: {
          workingHours: { timezone: 'UTC', days: [1, 2, 3, 4, 5, 6, 7], start: '09:00', end: '12:00' },
          calendar: { selectedCalendarIds: [`${serverUrl}/calendars/home/`] },
        },
      }).expect(200);
      const res = await t.http.get('/v1/public/providers/guarded-coach/availability?from=2030-03-11&to=2030-03-11').expect(503);
      expect(res.body.error.code).toBe('availability.calendar_unavailable');
      expect(caldav.requests).toEqual([]);
    });
  });
});
