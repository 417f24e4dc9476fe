import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { bounded, WAIT_BOUND_MS } from '../throwaway-servers.js';

/**
 * TEST DOUBLE of a customer's webhook receiver: a local HTTP server on 127.0.0.1 that records every request and
 * verifies its Standard Webhooks signature with the `standardwebhooks` library, once per secret it knows (so a
 * test sees which secrets a delivery verifies with). `answer` decides the response per request (its 1-based
 * number): a status and body, or 'hang' (never answers; the request is released when the double closes).
 */
export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  signature: string;
  body: { id: string; type: string; version: number; timestamp: string; organizationId: string; data: Record<string, unknown> };
  /** per known secret: whether the request verifies with it */
  verifiedWith: Record<string, boolean>;
}

export type ReceiverAnswer = { status: number; body?: string } | 'hang';

export interface WebhookReceiverDouble {
  url: string;
  received: ReceivedWebhook[];
  /** secrets to verify with (name -> whsec_...) */
  secrets: Record<string, string>;
  answer: (n: number, request: ReceivedWebhook) => ReceiverAnswer;
  /** resolves when `count` requests have arrived; rejects, saying how many came, after `withinMs` */
  waitFor(count: number, withinMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiverDouble(answer: WebhookReceiverDouble['answer'] = () => ({ status: 200, body: 'ok' })): Promise<WebhookReceiverDouble> {
  const hanging = new Set<ServerResponse>();
  const waiters: { count: number; resolve: () => void }[] = [];
  const double = { received: [] as ReceivedWebhook[], secrets: {} as Record<string, string>, answer } as WebhookReceiverDouble;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) };
      const verifiedWith: Record<string, boolean> = {};
      for (const [name, secret] of Object.entries(double.secrets)) {
        try {
          new Webhook(secret).verify(raw, headers);
          verifiedWith[name] = true;
        } catch {
          verifiedWith[name] = false;
        }
      }
      const received: ReceivedWebhook = { id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'], body: JSON.parse(raw), verifiedWith };
      double.received.push(received);
      for (const w of waiters.filter((w) => double.received.length >= w.count)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      const a = double.answer(double.received.length, received);
      if (a === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  double.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  double.waitFor = (count, withinMs = WAIT_BOUND_MS) => (double.received.length >= count ? Promise.resolve()
    : bounded(new Promise<void>((resolve) => waiters.push({ count, resolve })), withinMs, () => `expected ${count} webhook requests, ${double.received.length} arrived`));
  double.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return double;
}
