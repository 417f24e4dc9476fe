import 'reflect-metadata';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { AppModule } from '../src/app.module.js';
import { OutboxRelay } from '../src/platform/queue/outbox-relay.service.js';
import { PrivilegedDatabase } from '../src/platform/database/privileged.service.js';
import { identityRepository } from '../src/modules/auth/identity.repository.js';
import { createApp } from '../src/bootstrap.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { loginPassword } from '../src/platform/database/database-url.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { ensureDatabaseUrl } from '../src/platform/database/local-postgres.js';

// `npm run seed:demo`: a demo organization with a member of every role and a started ledger with a few
// months of entries in EUR and USD, made through the API itself (validation, services, audit rows, row-level
// security: every invariant holds). Idempotent: users, memberships and the organization are looked up
// before they are created, journal entries carry idempotency keys.

export type DemoApi = (method: 'GET' | 'POST', url: string, body?: object, token?: string, headers?: Record<string, string>) => Promise<{ status: number; body: any }>;

/** How the demo organization gets its plan: a signed Stripe event through the webhook, then the job that applies it. */
export interface DemoBilling {
  webhookSecret: string;
  /** runs the outbox jobs (the webhook's event processing) to completion */
  drain(): Promise<unknown>;
}

/** What the seed does outside the API: the demo addresses are not real mailboxes, so their verification is set directly. */
export interface DemoAccounts {
  markEmailVerified(email: string): Promise<unknown>;
}

export const DEMO_PASSWORD = 'omnizen-demo-password';
export const DEMO_ORG = 'Demo Trading GmbH';
export const DEMO_USERS = [
  { role: 'owner', email: 'owner@demo.omnizen.local', name: 'Olivia Owner' },
  { role: 'admin', email: 'admin@demo.omnizen.local', name: 'Adam Admin' },
  { role: 'accountant', email: 'accountant@demo.omnizen.local', name: 'Anna Accountant' },
  { role: 'member', email: 'member@demo.omnizen.local', name: 'Max Member' },
  { role: 'viewer', email: 'viewer@demo.omnizen.local', name: 'Vera Viewer' },
] as const;

function expectStatus(res: { status: number; body: any }, ok: number[], what: string): any {
  if (!ok.includes(res.status)) throw new Error(`seed:demo: ${what} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

async function signIn(api: DemoApi, user: (typeof DEMO_USERS)[number]): Promise<string> {
  // answers 202 whether or not the user exists already (registration does not tell): then sign in
  expectStatus(await api('POST', '/v1/auth/register', { email: user.email, password: DEMO_PASSWORD, name: user.name }), [202], `registering ${user.email}`);
  return expectStatus(await api('POST', '/v1/auth/login', { email: user.email, password: DEMO_PASSWORD }), [200], `logging in ${user.email}`).accessToken;
}

/** A month of trading: sales and purchases with VAT, rent, a customer paying, and one sale in USD. */
function monthEntries(month: number, acc: Record<string, string>, vat: string) {
  const m = String(month).padStart(2, '0');
  const d = (day: number) => `2026-${m}-${String(day).padStart(2, '0')}`;
  const sale = (1800 + month * 150).toFixed(2);
  const goods = (700 + month * 40).toFixed(2);
  return [
    { key: `rent`, date: d(1), memo: `Office rent 2026-${m}`, source: 'manual', lines: [{ accountId: acc['5200'], debit: '1250.00' }, { accountId: acc['1100'], credit: '1250.00' }] },
    { key: `purchase`, date: d(6), memo: `Goods from Nordlicht Supplies`, source: 'bill', sourceRef: `BILL-2026-${m}`,
      lines: [{ accountId: acc['1400'], debit: goods, taxCodeId: vat }, { accountId: acc['2100'], credit: (Number(goods) * 1.19).toFixed(2), counterpartyType: 'vendor', counterpartyId: 'nordlicht' }] },
    { key: `sale`, date: d(12), memo: `Invoice to Bergmann AG`, source: 'invoice', sourceRef: `INV-2026-${m}`,
      lines: [{ accountId: acc['1200'], debit: (Number(sale) * 1.19).toFixed(2), counterpartyType: 'customer', counterpartyId: 'bergmann' }, { accountId: acc['4100'], credit: sale, taxCodeId: vat }] },
    { key: `cogs`, date: d(12), memo: 'Cost of the goods sold', source: 'manual', lines: [{ accountId: acc['5100'], debit: goods }, { accountId: acc['1400'], credit: goods }] },
    { key: `usd-sale`, date: d(18), memo: 'Export sale to Hudson Outfitters (USD)', source: 'invoice', sourceRef: `INV-2026-${m}-US`,
      lines: [{ accountId: acc['1200'], debit: '1500.00', currency: 'USD', counterpartyType: 'customer', counterpartyId: 'hudson' }, { accountId: acc['4100'], credit: '1500.00', currency: 'USD' }] },
    { key: `receipt`, date: d(25), memo: 'Bergmann AG pays', source: 'payment', lines: [{ accountId: acc['1100'], debit: (Number(sale) * 1.19).toFixed(2) }, { accountId: acc['1200'], credit: (Number(sale) * 1.19).toFixed(2) }] },
  ];
}

/** Creates (or finds) the demo data through the API; returns the logins. */
export async function seedDemo(
  api: DemoApi, billing: DemoBilling, demoAccounts: DemoAccounts,
): Promise<{ orgId: string; logins: { role: string; email: string; password: string }[] }> {
  const tokens: Record<string, string> = {};
  for (const user of DEMO_USERS) tokens[user.role] = await signIn(api, user);
  // an unverified account may not accept an invitation with the admin's token (nobody reads the demo mailboxes)
  for (const user of DEMO_USERS) await demoAccounts.markEmailVerified(user.email);
  const owner = tokens.owner;

  const orgs = expectStatus(await api('GET', '/v1/orgs', undefined, owner), [200], 'listing organizations') as { id: string; name: string }[];
  const orgId = orgs.find((o) => o.name === DEMO_ORG)?.id
    ?? expectStatus(await api('POST', '/v1/orgs', { name: DEMO_ORG }, owner), [201], 'creating the organization').id;
  const org = `/v1/orgs/${orgId}`;

  // the ledger needs the professional plan or above: the enterprise plan, as Stripe would report a completed
  // checkout (the event id is fixed, so a second run is a duplicate the webhook acknowledges and ignores)
  const event = JSON.stringify({
    id: `evt_demo_plan_${orgId}`, object: 'event', type: 'checkout.session.completed', created: Math.floor(Date.now() / 1000), livemode: false,
    data: { object: { object: 'checkout.session', mode: 'subscription', client_reference_id: orgId, subscription: `sub_demo_${orgId}`, customer: 'cus_demo',
      metadata: { org_id: orgId, app: 'omnizen', plan: 'enterprise' } } },
  });
  const signature = Stripe.webhooks.generateTestHeaderString({ payload: event, secret: billing.webhookSecret });
  expectStatus(await api('POST', '/v1/billing/stripe/webhook', JSON.parse(event), undefined, { 'stripe-signature': signature, 'content-type': 'application/json' }), [200], 'subscribing to the enterprise plan');
  await billing.drain();

  const members = expectStatus(await api('GET', `${org}/members?limit=200`, undefined, owner), [200], 'listing members').items as { email: string }[];
  for (const user of DEMO_USERS.filter((u) => u.role !== 'owner' && !members.some((m) => m.email === u.email))) {
    const invitation = expectStatus(await api('POST', `${org}/invitations`, { email: user.email, role: user.role }, owner), [201], `inviting ${user.email}`);
    expectStatus(await api('POST', '/v1/invitations/accept', { orgId, token: invitation.token }, tokens[user.role]), [200], `accepting for ${user.email}`);
  }

  expectStatus(await api('POST', `${org}/ledger/books`, { baseCurrency: 'EUR', fiscalYearStart: '2026-01-01', template: 'standard' }, owner), [201, 409], 'starting the books');
  const accounts = expectStatus(await api('GET', `${org}/ledger/accounts`, undefined, owner), [200], 'listing accounts') as { id: string; code: string }[];
  const acc = Object.fromEntries(accounts.map((a) => [a.code, a.id]));
  const taxCodes = expectStatus(await api('GET', `${org}/ledger/tax-codes`, undefined, owner), [200], 'listing tax codes') as { id: string; code: string }[];
  const vat = taxCodes.find((c) => c.code === 'VAT19')?.id
    ?? expectStatus(await api('POST', `${org}/ledger/tax-codes`, { code: 'VAT19', name: 'VAT 19 %', rate: '19', salesAccountId: acc['2200'], purchaseAccountId: acc['1300'] }, owner), [201], 'creating VAT19').id;
  const rates = [['2026-01-01', '0.9100'], ['2026-02-01', '0.9200'], ['2026-03-01', '0.9050'], ['2026-04-01', '0.9150']].map(([date, rate]) => ({ currency: 'USD', date, rate }));
  expectStatus(await api('POST', `${org}/ledger/fx-rates/import`, { rates }, owner), [201], 'importing USD rates');

  expectStatus(await api('POST', `${org}/ledger/journal-entries`, {
    date: '2026-01-02', memo: 'Share capital paid in', source: 'manual', idempotencyKey: 'demo-2026-01-capital',
    lines: [{ accountId: acc['1100'], debit: '50000.00' }, { accountId: acc['3100'], credit: '50000.00' }],
  }, owner), [200, 201], 'posting the capital');
  for (const month of [1, 2, 3, 4]) {
    for (const { key, ...entry } of monthEntries(month, acc, vat)) {
      expectStatus(await api('POST', `${org}/ledger/journal-entries`, { ...entry, idempotencyKey: `demo-2026-${month}-${key}` }, tokens.accountant), [200, 201], `posting ${entry.memo}`);
    }
  }
  return { orgId, logins: DEMO_USERS.map((u) => ({ role: u.role, email: u.email, password: DEMO_PASSWORD })) };
}

async function main(): Promise<void> {
  const root = projectRoot();
  loadLocalEnv(root);
  process.env.DATABASE_URL = await ensureDatabaseUrl(root);
  const webhookSecret = process.env.STRIPE_WEBHOOK_SECRET || `whsec_seed_${randomBytes(16).toString('hex')}`;
  // jobs in this process (drain() applies the plan before the ledger is started)
  const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', REDIS_URL: '', STRIPE_WEBHOOK_SECRET: webhookSecret });
  await migrate(config.databaseUrl, { apiPassword: loginPassword(config.apiDatabaseUrl) });
  const app = await createApp(AppModule.forRoot(config), config);
  await app.init();
  const fastify = app.getHttpAdapter().getInstance();
  const api: DemoApi = async (method, url, body, token, headers = {}) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const res = await fastify.inject({ method, url, payload, headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  };
  try {
    const accounts: DemoAccounts = {
      markEmailVerified: (email) => app.get(PrivilegedDatabase).run('auth.credentials', (db) => identityRepository.markEmailVerified(db, email)),
    };
    const { orgId, logins } = await seedDemo(api, { webhookSecret, drain: () => app.get(OutboxRelay).drain() }, accounts);
    console.log(`Demo organization "${DEMO_ORG}" (${orgId}): a started ledger (EUR, USD), January to April 2026.`);
    console.log('Log in (POST /v1/auth/login) as:');
    for (const l of logins) console.log(`  ${l.role.padEnd(10)} ${l.email.padEnd(32)} ${l.password}`);
  } finally {
    await app.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(() => process.exit(0), (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
