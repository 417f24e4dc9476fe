import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { ManualClock } from '../support/clock.js';
import { addMember, createOrg, registerUser, type TestUser } from '../support/factories.js';
import { startStripeDouble, type StripeDouble } from '../support/doubles/stripe-double.js';
import { BillingExpiryJob } from '../../src/modules/billing/billing-expiry.job.js';
import { billingRepository } from '../../src/modules/billing/billing.repository.js';

const HOUR_MS = 3_600_000;

/**
 * A checkout overtaken while Stripe created its session (another checkout drew a new key meanwhile) saves that session
 * to be expired in the transaction that finds it overtaken. When that transaction failed (the database down), the
 * process stopped before it, or Stripe's answer was lost, the session stayed open and payable and nothing remembered it:
 * the overtaking checkout had overwritten the key and its Stripe parameters. Now the overtaking checkout keeps the key
 * with its request's parameters (hub.limit_locks.checkout_overtaken_keys) in the transaction that draws its own, so the
 * session can be found again by replaying its create under the key's Idempotency-Key (the double keeps answers by key, as
 * Stripe does): the billing job, or the organization's next checkout, saves it to be expired and expires it, and the
 * parameters (the admin's e-mail) go with the key.
 */
describe('billing: an overtaken checkout\'s session is never lost', () => {
  let t: TestApp;
  let stripe: StripeDouble;
  let ada: TestUser;
  let bob: TestUser;
  let job: BillingExpiryJob;
  const clock = new ManualClock();

  const checkout = (orgId: string, plan: string, user = ada) =>
    t.http.post(`/v1/orgs/${orgId}/billing/checkout`).set(user.auth).send({ app: 'omnizen', plan }).then((r) => r);
  const keyRow = async (orgId: string) => (await t.db.admin.query(
    `SELECT checkout_session_id AS session, checkout_params IS NOT NULL AS "inDoubt", checkout_sessions_to_expire AS "toExpire",
       checkout_overtaken_keys AS overtaken
     FROM hub.limit_locks WHERE org_id = $1 AND app_id = 'omnizen'`, [orgId])).rows[0];
  const audits = async (orgId: string) => (await t.db.admin.query(
    `SELECT action, entity_id AS session, principal_type AS principal, after FROM core.audit_logs WHERE org_id = $1 AND action LIKE 'billing.checkout_%' ORDER BY audit_logs.id`, [orgId])).rows;
  const sessionsOf = (orgId: string) => stripe.checkoutSessions
    .filter((id) => stripe.sessions.get(id)!.metadata.org_id === orgId).map((id) => ({ id, status: stripe.sessions.get(id)!.status, plan: stripe.sessions.get(id)!.metadata.plan }));

  /**
   * Ada's checkout is overtaken by bob's while Stripe creates her session (held in the double): bob's is the open checkout
   * (201), and her key is kept, with her request's parameters, as overtaken. `meanwhile` runs before her create is
   * answered (to make what follows fail); her answer is returned as a promise.
   */
  async function overtaken(orgId: string, meanwhile: () => void = () => {}) {
    const createHeld = stripe.holdNext();
    const first = checkout(orgId, 'professional', ada);
    try {
      expect((await createHeld.arrived).path).toBe('/v1/checkout/sessions');
      const second = await checkout(orgId, 'enterprise', bob);
      expect(second.status).toBe(201);
      const row = await keyRow(orgId);
      expect(row).toEqual({ session: second.body.id, inDoubt: false, toExpire: [], overtaken: [{ key: expect.any(String), request: expect.any(String), params: expect.any(String), drawnAt: expect.any(String) }] });
      // her parameters, with her e-mail (no Stripe customer yet), so that the create can be replayed
      expect(JSON.parse(row.overtaken[0].params)).toMatchObject({ customer_email: ada.email, metadata: { plan: 'professional' } });
      meanwhile();
      return { second: second.body as { id: string }, first, key: row.overtaken[0].key as string };
    } finally {
      createHeld.release();
    }
  }

  beforeAll(async () => {
    stripe = await startStripeDouble();
    t = await createTestApp({
      ...stripe.env, REDIS_URL: '', STRIPE_SECRET_KEY: 'sk_test_double', STRIPE_WEBHOOK_SECRET: 'whsec_test_overtaken_keys',
      STRIPE_PRICES: 'price_omz_pro=omnizen:professional,price_omz_ent=omnizen:enterprise',
    }, { clock });
    ada = await registerUser(t, 'ada');
    bob = await registerUser(t, 'bob');
    job = t.app.get(BillingExpiryJob);
  });
  afterAll(async () => {
    await t.close();
    await stripe.close();
  });

  it('Stripe answers the overtaken create, then the transaction saving its session fails: the billing job learns the session and expires it', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Record Failed Co');
    await addMember(t, orgId, bob, 'admin');
    const spy = jest.spyOn(billingRepository, 'recordCheckoutSession');
    let answer: { status: number };
    let second: { id: string };
    try {
      const o = await overtaken(orgId, () => spy.mockRejectedValueOnce(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })));
      second = o.second;
      answer = await o.first;
    } finally {
      spy.mockRestore();
    }
    expect(answer.status).toBeGreaterThanOrEqual(500);
    const [adas] = sessionsOf(orgId).filter((s) => s.id !== second.id);
    expect(sessionsOf(orgId)).toEqual([{ id: second.id, status: 'open', plan: 'enterprise' }, { id: adas.id, status: 'open', plan: 'professional' }]);
    // nothing saved her session: only the overtaken key can find it again
    expect(await keyRow(orgId)).toEqual({ session: second.id, inDoubt: false, toExpire: [], overtaken: [expect.objectContaining({ params: expect.stringContaining(ada.email) })] });

    expect(await job.learnOvertakenCheckouts()).toEqual([adas.id]);
    expect(await keyRow(orgId)).toEqual({ session: second.id, inDoubt: false, toExpire: [adas.id], overtaken: [] });
    expect(await job.expireLeftCheckoutSessions()).toEqual([adas.id]);
    expect(sessionsOf(orgId)).toEqual([{ id: second.id, status: 'open', plan: 'enterprise' }, { id: adas.id, status: 'expired', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ session: second.id, inDoubt: false, toExpire: [], overtaken: [] });
    expect((await audits(orgId)).map((a) => [a.action, a.session, a.principal])).toEqual([
      ['billing.checkout_started', second.id, 'user'],
      ['billing.checkout_expired', adas.id, 'system'],
    ]);
    // her e-mail is no longer in the row
    expect((await t.db.admin.query(`SELECT 1 FROM hub.limit_locks WHERE org_id = $1 AND row_to_json(limit_locks)::text ILIKE '%' || $2 || '%'`, [orgId, ada.email])).rows).toEqual([]);
    expect(await job.learnOvertakenCheckouts()).toEqual([]);
  });

  it('the process stops between Stripe\'s answer and the transaction saving the session: the next checkout learns the session and expires it first', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Process Stopped Co');
    await addMember(t, orgId, bob, 'admin');
    const spy = jest.spyOn(billingRepository, 'recordCheckoutSession');
    let stop!: (err: Error) => void;
    const stopped = new Promise<never>((_, reject) => (stop = reject));
    let reached!: () => void;
    const atRecord = new Promise<void>((resolve) => (reached = resolve));
    let o: Awaited<ReturnType<typeof overtaken>> | undefined;
    try {
      // her request never gets past Stripe's answer (as a process that stopped there): its recording never runs
      o = await overtaken(orgId, () => spy.mockImplementationOnce(() => {
        reached();
        return stopped;
      }));
      await atRecord;
      const [adas] = sessionsOf(orgId).filter((s) => s.id !== o!.second.id);
      expect(adas).toEqual({ id: expect.any(String), status: 'open', plan: 'professional' });

      // ada tries again (the professional plan): her overtaken session is learned and expired first, then bob's (replaced)
      const next = await checkout(orgId, 'professional', ada);
      expect(next.status).toBe(201);
      expect(sessionsOf(orgId)).toEqual([
        { id: o.second.id, status: 'expired', plan: 'enterprise' },
        { id: adas.id, status: 'expired', plan: 'professional' },
        { id: next.body.id, status: 'open', plan: 'professional' },
      ]);
      expect(await keyRow(orgId)).toEqual({ session: next.body.id, inDoubt: false, toExpire: [], overtaken: [] });
      expect((await audits(orgId)).map((a) => [a.action, a.session, a.after.reason ?? null])).toEqual([
        ['billing.checkout_started', o.second.id, null],
        ['billing.checkout_expired', adas.id, 'superseded'],
        ['billing.checkout_expired', o.second.id, 'replaced'],
        ['billing.checkout_started', next.body.id, null],
      ]);
    } finally {
      spy.mockRestore();
      // the request is let go as a stopped process's connection would be: terminated
      stop(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }));
    }
    expect((await o!.first).status).toBeGreaterThanOrEqual(500);
    expect(await job.learnOvertakenCheckouts()).toEqual([]);
    expect(await job.expireLeftCheckoutSessions()).toEqual([]);
  });

  it('Stripe\'s answer to the overtaken create is lost: 502, and the billing job learns the session and expires it', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Answer Lost Co');
    await addMember(t, orgId, bob, 'admin');
    const o = await overtaken(orgId, () => stripe.loseNext(2)); // her create and stripe-node's retry (answered from the key)
    const lost = await o.first;
    expect([lost.status, lost.body.error.code]).toEqual([502, 'billing.stripe_failed']);
    const [adas] = sessionsOf(orgId).filter((s) => s.id !== o.second.id);
    expect(await keyRow(orgId)).toEqual({ session: o.second.id, inDoubt: false, toExpire: [], overtaken: [expect.objectContaining({ key: o.key })] });

    expect(await job.learnOvertakenCheckouts()).toEqual([adas.id]);
    expect(await job.expireLeftCheckoutSessions()).toEqual([adas.id]);
    expect(sessionsOf(orgId)).toEqual([{ id: o.second.id, status: 'open', plan: 'enterprise' }, { id: adas.id, status: 'expired', plan: 'professional' }]);
    expect(await keyRow(orgId)).toEqual({ session: o.second.id, inDoubt: false, toExpire: [], overtaken: [] });
  });

  it('an overtaken checkout that saves its session forgets its key; one whose create Stripe refused forgets it too', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Saved Co');
    await addMember(t, orgId, bob, 'admin');
    const o = await overtaken(orgId);
    const superseded = await o.first;
    expect([superseded.status, superseded.body.error.code]).toEqual([409, 'billing.checkout_superseded']);
    const [adas] = sessionsOf(orgId).filter((s) => s.id !== o.second.id);
    expect(adas.status).toBe('expired');
    expect(await keyRow(orgId)).toEqual({ session: o.second.id, inDoubt: false, toExpire: [], overtaken: [] });

    const other = await createOrg(t, ada, 'Overtaken Refused Co');
    await addMember(t, other, bob, 'admin');
    const created = stripe.checkoutSessions.length;
    const r = await overtaken(other, () => stripe.failNext(400, 'No such price: price_omz_pro'));
    const refused = await r.first;
    expect([refused.status, refused.body.error.code]).toEqual([502, 'billing.stripe_failed']);
    expect(stripe.checkoutSessions.slice(created)).toEqual([r.second.id]);
    expect(await keyRow(other)).toEqual({ session: r.second.id, inDoubt: false, toExpire: [], overtaken: [] });
  });

  it('past Stripe\'s idempotency window an overtaken key is not replayed: the billing job drops it with its parameters', async () => {
    const orgId = await createOrg(t, ada, 'Overtaken Window Co');
    await addMember(t, orgId, bob, 'admin');
    const spy = jest.spyOn(billingRepository, 'recordCheckoutSession');
    let o: Awaited<ReturnType<typeof overtaken>>;
    try {
      o = await overtaken(orgId, () => spy.mockRejectedValueOnce(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })));
      expect((await o.first).status).toBeGreaterThanOrEqual(500);
    } finally {
      spy.mockRestore();
    }
    const before = stripe.requests.length;
    clock.advance(24 * HOUR_MS);
    try {
      // past the window a replay would create a new session: nothing is replayed, the key goes with its parameters
      expect(await job.learnOvertakenCheckouts()).toEqual([]);
      expect(stripe.requests.length).toBe(before);
      expect(await job.dropStaleCheckoutKeys()).toEqual([{ orgId, appId: 'omnizen', key: o.key }]);
      expect(await keyRow(orgId)).toEqual({ session: o.second.id, inDoubt: false, toExpire: [], overtaken: [] });
    } finally {
      clock.advance(-24 * HOUR_MS);
    }
  });
});
