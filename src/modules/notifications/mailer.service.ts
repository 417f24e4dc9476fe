import { isIPv4 } from 'node:net';
import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Metrics } from '../../platform/observability/metrics.js';
import type { RenderedEmail } from './email-templates.js';

/** What the SMTP server said: accepted (with its answer and message id), or refused / unreachable. */
export type SendOutcome =
  | { kind: 'sent'; response: string; messageId: string }
  | { kind: 'not_sent' }
  | { kind: 'failed'; response: string; permanent: boolean };

/** Whether an SMTP host (a URL's hostname) is this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

/**
 * nodemailer's options for SMTP_URL. smtps:// is TLS from the start; smtp:// requires STARTTLS (requireTLS: nodemailer
 * sends it whether or not the server offers it, and gives up before AUTH or MAIL when it fails) unless the host is
 * loopback, or `requireTls` (SMTP_REQUIRE_TLS) says otherwise. Without it, STARTTLS is used only when offered: whoever
 * strips the offer on the path reads the credentials and every link of a reset, verification or invitation mail.
 */
export function smtpTransportOptions(smtpUrl: string, requireTls?: boolean): SMTPTransport.Options {
  const url = new URL(smtpUrl);
  const secure = url.protocol === 'smtps:';
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : undefined, secure,
    requireTLS: !secure && (requireTls ?? !isLoopbackHost(url.hostname)),
    auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
    connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000,
  };
}

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
    if (config.mail.smtpUrl) this.transport = nodemailer.createTransport(smtpTransportOptions(config.mail.smtpUrl, config.mail.requireTls));
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
      this.logger.log({ toDomain: to.slice(to.lastIndexOf('@') + 1) }, 'e-mail not sent (no SMTP_URL); kept as not_sent');
      return { kind: 'not_sent' };
    }
    try {
      const info = await this.transport.sendMail({ from: this.config.mail.from, to, subject: message.subject, text: message.text, html: message.html });
      return { kind: 'sent', response: String(info.response ?? ''), messageId: String(info.messageId ?? '') };
    } catch (err) {
      const e = err as Error & { code?: string; response?: string; responseCode?: number };
      // STARTTLS required and refused (or the TLS handshake failed): nothing was sent, and it is no answer to this
      // message but the server's or the path's (an attacker stripping it), which may pass later; its message says so
      if (e.code === 'ETLS') return { kind: 'failed', response: e.message.slice(0, 1000), permanent: false };
      // 5xx: the server refuses this message for good (unknown mailbox, policy); anything else may pass later
      const permanent = typeof e.responseCode === 'number' && e.responseCode >= 500;
      return { kind: 'failed', response: (e.response ?? e.message).slice(0, 1000), permanent };
    }
  }

  onApplicationShutdown(): void {
    this.transport?.close();
  }
}
