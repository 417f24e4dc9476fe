import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

/**
 * A TEST DOUBLE of the Stripe API: a local HTTP server implementing only the endpoints the
 * billing module calls (creating, reading and expiring Checkout sessions, billing-portal sessions, reading and canceling
 * subscriptions). The real SDK talks to it
 * through its host/port/protocol options (STRIPE_API_HOST/PORT/PROTOCOL), so the production code
 * path — stripe-node building and sending the request — is what the tests exercise.
 *
 * Idempotency as Stripe does it, for POSTs: the answer to the first request with an Idempotency-Key is kept, and a
 * later request with that key gets it again (header Idempotent-Replayed: true) without being executed; one with other
 * parameters gets 400 idempotency_error; one that arrives while the first is still running gets 409 (stripe-node
 * retries it once).
 */
export interface StripeDoubleRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  /** the Idempotency-Key header, when the SDK sent one */
  idempotencyKey: string | undefined;
  /** the form-encoded body, decoded into flat bracketed keys (e.g. "line_items[0][price]") */
  form: Record<string, string>;
}

export interface StripeDouble {
  port: number;
  requests: StripeDoubleRequest[];
  /** the ids of the Checkout sessions created (a replayed answer creates none) */
  checkoutSessions: string[];
  /**
   * Each Checkout session created, by id: its status ('open' until expired; a test sets 'complete', with the subscription
   * it started, for one the customer paid). As Stripe does: expiring one that is not open answers 400, an unknown one 404.
   */
  sessions: Map<string, { status: 'open' | 'complete' | 'expired'; subscription: string | null; metadata: Record<string, string> }>;
  /**
   * The subscriptions Stripe holds, by id (a test adds the ones its events name). As Stripe does: canceling one that
   * has ended, or one it does not have, answers 404 "No such subscription"; an ended one can still be read.
   */
  subscriptions: Map<string, { status: string; customer: string }>;
  /** env for createTestApp: points the SDK at this double */
  env: Record<string, string>;
  /**
   * the next request is answered with this Stripe error instead: executed (a POST's answer kept under its
   * Idempotency-Key and replayed to the next one with that key, as Stripe keeps a 5xx once it began executing); with
   * `notKept` (and always for a 429), refused before its Idempotency-Key is looked at, not executed nor kept
   */
  failNext(status: number, message: string, options?: { notKept?: boolean }): void;
  /** the next Checkout session created is answered without its `url` (as Stripe answers an embedded one) */
  withoutUrlNext(): void;
  /**
   * the next `count` requests are executed (and their answers kept under their Idempotency-Key, as Stripe does) but the
   * connection is then closed unanswered: Stripe did it, and the caller never learned (a timeout, a network error)
   */
  loseNext(count?: number): void;
  /** the next request is held unanswered: `arrived` resolves once it is in, and it is answered only after `release()` */
  holdNext(): { arrived: Promise<StripeDoubleRequest>; release(): void };
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}_test_${randomBytes(8).toString('hex')}`;

async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

export async function startStripeDouble(): Promise<StripeDouble> {
  const requests: StripeDoubleRequest[] = [];
  const checkoutSessions: string[] = [];
  const sessions: StripeDouble['sessions'] = new Map();
  /** by Idempotency-Key: the first request's path and parameters, and its answer once sent */
  const idempotent = new Map<string, { path: string; form: string; answer?: { status: number; body: unknown } }>();
  const subscriptions = new Map<string, { status: string; customer: string }>();
  let failure: { status: number; message: string; notKept?: boolean } | undefined;
  let withoutUrl = false;
  let lose = 0;
  let hold: { arrive: (r: StripeDoubleRequest) => void; released: Promise<void> } | undefined;
  const sessionBody = (sid: string, mode: string | undefined, clientReferenceId: string | null, customer: string | null) => {
    const session = sessions.get(sid)!;
    return {
      id: sid, object: 'checkout.session', mode, status: session.status, url: session.status === 'open' ? `https://checkout.stripe.test/c/pay/${sid}` : null,
      client_reference_id: clientReferenceId, customer, subscription: session.subscription, metadata: session.metadata,
    };
  };
  const server: Server = createServer(async (req, res) => {
    const form = await readForm(req);
    const path = (req.url ?? '').split('?')[0];
    const idempotencyKey = req.headers['idempotency-key'];
    const request = { method: req.method ?? '', path, authorization: req.headers.authorization, idempotencyKey: typeof idempotencyKey === 'string' ? idempotencyKey : undefined, form };
    requests.push(request);
    /** the request's entry in `idempotent` when it is the first with its key: its answer is kept there */
    let kept: { path: string; form: string; answer?: { status: number; body: unknown } } | undefined;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (kept) kept.answer = { status, body };
      if (lose > 0) {
        lose -= 1;
        res.destroy();
        return;
      }
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': id('req'), ...headers });
      res.end(JSON.stringify(body));
    };
    if (failure?.status === 429 || failure?.notKept) {
      // as Stripe: a rate-limited request (or one failing before it is executed) is refused before its Idempotency-Key
      // is looked at, not executed nor kept
      const { status, message } = failure;
      failure = undefined;
      return send(status, { error: status === 429 ? { type: 'invalid_request_error', code: 'rate_limit', message } : { type: 'api_error', message } });
    }
    if (req.method === 'POST' && request.idempotencyKey) {
      const key = request.idempotencyKey;
      const first = idempotent.get(key);
      if (first && (first.path !== path || first.form !== JSON.stringify(form))) {
        return send(400, { error: { type: 'idempotency_error', message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.` } });
      }
      if (first && !first.answer) {
        return send(409, { error: { type: 'idempotency_error', message: `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.` } });
      }
      if (first) return send(first.answer!.status, first.answer!.body, { 'idempotent-replayed': 'true' });
      kept = { path, form: JSON.stringify(form) };
      idempotent.set(key, kept);
    }
    if (hold) {
      const held = hold;
      hold = undefined;
      held.arrive(request);
      await held.released;
    }
    if (failure) {
      const { status, message } = failure;
      failure = undefined;
      return send(status, { error: { type: 'invalid_request_error', message } });
    }
    if (!req.headers.authorization?.startsWith('Bearer sk_')) {
      return send(401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided' } });
    }
    if (req.method === 'GET' && path === '/v1/balance') {
      // the readiness probe's read
      return send(200, { object: 'balance', available: [{ amount: 0, currency: 'usd', source_types: { card: 0 } }], pending: [], livemode: false });
    }
    if (req.method === 'POST' && path === '/v1/checkout/sessions') {
      if (!form['line_items[0][price]'] || !form.success_url) {
        return send(400, { error: { type: 'invalid_request_error', message: 'Missing required param: line_items or success_url' } });
      }
      const sid = id('cs');
      checkoutSessions.push(sid);
      const metadata = Object.fromEntries(Object.entries(form).filter(([k]) => k.startsWith('metadata[')).map(([k, v]) => [k.slice(9, -1), v]));
      sessions.set(sid, { status: 'open', subscription: null, metadata });
      const body = sessionBody(sid, form.mode, form.client_reference_id ?? null, form.customer ?? null);
      if (withoutUrl) {
        withoutUrl = false;
        return send(200, { ...body, url: null });
      }
      return send(200, body);
    }
    const checkoutSession = /^\/v1\/checkout\/sessions\/([A-Za-z0-9_]+)(\/expire)?$/.exec(path);
    if (checkoutSession && ((req.method === 'GET' && !checkoutSession[2]) || (req.method === 'POST' && checkoutSession[2]))) {
      const [, sid, expire] = checkoutSession;
      const session = sessions.get(sid);
      if (!session) return send(404, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'session', message: `No such checkout.session: '${sid}'` } });
      if (expire) {
        if (session.status !== 'open') {
          return send(400, { error: { type: 'invalid_request_error', message: `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of \`${session.status}\`.` } });
        }
        session.status = 'expired';
      }
      return send(200, sessionBody(sid, 'subscription', session.metadata.org_id ?? null, null));
    }
    if (req.method === 'POST' && path === '/v1/billing_portal/sessions') {
      if (!form.customer) return send(400, { error: { type: 'invalid_request_error', message: 'Missing required param: customer' } });
      const pid = id('bps');
      return send(200, { id: pid, object: 'billing_portal.session', customer: form.customer, return_url: form.return_url, url: `https://billing.stripe.test/p/session/${pid}` });
    }
    const subscription = /^\/v1\/subscriptions\/([A-Za-z0-9_]+)$/.exec(path);
    if (subscription && (req.method === 'GET' || req.method === 'DELETE')) {
      const [, sid] = subscription;
      const sub = subscriptions.get(sid);
      if (!sub || (req.method === 'DELETE' && sub.status === 'canceled')) {
        return send(404, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such subscription: '${sid}'` } });
      }
      if (req.method === 'DELETE') sub.status = 'canceled';
      return send(200, { id: sid, object: 'subscription', status: sub.status, customer: sub.customer, metadata: {} });
    }
    return send(404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${path})` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    checkoutSessions,
    sessions,
    subscriptions,
    failNext: (status, message, options) => (failure = { status, message, notKept: options?.notKept }),
    withoutUrlNext: () => (withoutUrl = true),
    loseNext: (count = 1) => (lose = count),
    holdNext: () => {
      let arrive!: (r: StripeDoubleRequest) => void;
      let release!: () => void;
      const arrived = new Promise<StripeDoubleRequest>((resolve) => (arrive = resolve));
      hold = { arrive, released: new Promise<void>((resolve) => (release = resolve)) };
      return { arrived, release };
    },
    env: { STRIPE_API_HOST: '127.0.0.1', STRIPE_API_PORT: String(port), STRIPE_API_PROTOCOL: 'http' },
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}
