import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { bounded, WAIT_BOUND_MS } from '../throwaway-servers.js';

/**
 * A TEST DOUBLE of a mail server: a real SMTP server (the smtp-server package) on 127.0.0.1 that keeps
 * every message it accepts, parsed (mailparser). The app's nodemailer speaks real SMTP to it (SMTP_URL),
 * so the production path (rendering, the SMTP conversation, the server's answer) is what tests exercise.
 */
export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
}

export interface SmtpDouble {
  port: number;
  messages: ReceivedMail[];
  /** env for createTestApp */
  env: Record<string, string>;
  /** the next `count` messages are refused with this SMTP answer (e.g. 451 temporary, 550 permanent) */
  refuseNext(code: number, message: string, count?: number): void;
  /** a slow server: from now on each message is answered (and kept) only at release(); `held` counts those waiting */
  hold(): void;
  readonly held: number;
  /** answers every held message and holds no more */
  release(): void;
  /** resolves when `count` messages in all have arrived; rejects, saying how many came, after `withinMs` */
  waitFor(count: number, withinMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export async function startSmtpDouble(): Promise<SmtpDouble> {
  const messages: ReceivedMail[] = [];
  const waiters: { count: number; resolve: (m: ReceivedMail[]) => void }[] = [];
  let refusals: { code: number; message: string; left: number } | undefined;
  let holding = false;
  const held: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true,
    // no reverse DNS per connection (smtp-server waits up to 1.5 s for it; every mail is a new connection)
    disableReverseLookup: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (holding) return void held.push(() => answer());
        answer();
      });
      const answer = () => {
        if (refusals && refusals.left > 0) {
          refusals.left -= 1;
          const err = Object.assign(new Error(refusals.message), { responseCode: refusals.code });
          return callback(err);
        }
        simpleParser(Buffer.concat(chunks)).then((parsed) => {
          messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            html: typeof parsed.html === 'string' ? parsed.html : '',
          });
          for (const w of [...waiters]) {
            if (messages.length >= w.count) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve([...messages]);
            }
          }
          callback();
        }, callback);
      };
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    messages,
    env: { SMTP_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM: 'OmniZen Test <no-reply@omnizen.test>' },
    hold() {
      holding = true;
    },
    get held() {
      return held.length;
    },
    release() {
      holding = false;
      for (const answer of held.splice(0)) answer();
    },
    refuseNext(code, message, count = 1) {
      refusals = { code, message, left: count };
    },
    waitFor(count, withinMs = WAIT_BOUND_MS) {
      if (messages.length >= count) return Promise.resolve([...messages]);
      return bounded(new Promise((resolve) => waiters.push({ count, resolve })), withinMs, () => `expected ${count} mails, ${messages.length} arrived`);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
