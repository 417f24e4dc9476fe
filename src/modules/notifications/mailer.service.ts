import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import nodemailer, { type Transporter } from 'nodemailer';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Metrics } from '../../platform/observability/metrics.js';
import type { RenderedEmail } from './email-templates.js';

/** What the SMTP server said: accepted (with its answer and message id), or refused / unreachable. */
export type SendOutcome =
  | { kind: 'sent'; response: string; messageId: string }
  | { kind: 'not_sent' }
  | { kind: 'failed'; response: string; permanent: boolean };

/**
 * Sends one message over SMTP (nodemailer, SMTP_URL). Without SMTP_URL nothing is sent: the message is
 * logged (recipient and subject only: bodies carry links with tokens) and the caller keeps it as not_sent.
 */
@Injectable()
export class Mailer implements OnApplicationShutdown {
  private readonly logger = new Logger('Mailer');
  private readonly transport?: Transporter;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: Metrics,
  ) {
    if (config.mail.smtpUrl) {
      const url = new URL(config.mail.smtpUrl);
      this.transport = nodemailer.createTransport({
        host: url.hostname, port: url.port ? Number(url.port) : undefined, secure: url.protocol === 'smtps:',
        auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
        connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000,
      });
    }
  }

  get configured(): boolean {
    return Boolean(this.transport);
  }

  /** Sends one message; each call counts once in omnizen_emails_total by its outcome (sent, failed, not_sent). */
  async send(to: string, message: RenderedEmail): Promise<SendOutcome> {
    const outcome = await this.attempt(to, message);
    this.metrics.emails.inc({ outcome: outcome.kind });
    return outcome;
  }

  private async attempt(to: string, message: RenderedEmail): Promise<SendOutcome> {
    if (!this.transport) {
      this.logger.log({ to, subject: message.subject }, 'e-mail not sent (no SMTP_URL); kept as not_sent');
      return { kind: 'not_sent' };
    }
    try {
      const info = await this.transport.sendMail({ from: this.config.mail.from, to, subject: message.subject, text: message.text, html: message.html });
      return { kind: 'sent', response: String(info.response ?? ''), messageId: String(info.messageId ?? '') };
    } catch (err) {
      const e = err as Error & { response?: string; responseCode?: number };
      // 5xx: the server refuses this message for good (unknown mailbox, policy); anything else may pass later
      const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500;
      return { kind: 'failed', response: (e.response ?? e.message).slice(0, 1000), permanent };
    }
  }

  onApplicationShutdown(): void {
    this.transport?.close();
  }
}
