import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import { normalizeEmail } from '../../platform/http/email.js';

/** How long the exchange waits for the Supabase project before treating the e-mail as unproven. */
const TIMEOUT_MS = 5000;
/** How long a read of the project's settings is trusted (a changed setting counts after at most this long). */
export const SETTINGS_TTL_MS = 60_000;
/**
 * How long a failed read of the settings is remembered: while GoTrue is down, an exchange counts the e-mail as
 * unverified at once instead of each waiting up to TIMEOUT_MS again; a recovered project is asked again after this.
 */
export const SETTINGS_FAILURE_TTL_MS = 30_000;

/**
 * Whether a Supabase user's e-mail is proven. A Supabase access token does not say so in a claim
 * its user cannot change (user_metadata is theirs to edit), so the project's Auth API is asked, with
 * the user's own token: GET /auth/v1/user returns the user with `email_confirmed_at`. Asked only the
 * first time an identity signs in (or is linked), never per request. No answer: not proven.
 *
 * `email_confirmed_at` proves the mailbox only if the project mails a confirmation before setting it:
 * with confirmations off (GoTrue's `mailer_autoconfirm`), every sign-up gets it, so anyone could sign up
 * with someone else's address and come back "confirmed". So the project's public GET /auth/v1/settings
 * is read first (cached SETTINGS_TTL_MS, a failure SETTINGS_FAILURE_TTL_MS): nothing of a project that
 * auto-confirms, or whose settings cannot be read, counts as proven.
 */
@Injectable()
export class SupabaseEmailCheck {
  private readonly logger = new Logger(SupabaseEmailCheck.name);
  private settings?: { mailerAutoconfirm: boolean; readAt: number };
  /** When the settings last could not be read (cleared by a successful read). */
  private settingsFailedAt?: number;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig, private readonly clock: Clock) {}

  async isConfirmed(token: string, email: string): Promise<boolean> {
    if (!(await this.projectConfirmsEmails())) return false;
    try {
      const res = await fetch(new URL('/auth/v1/user', this.config.auth.supabaseUrl), {
        headers: { authorization: `Bearer ${token}`, apikey: this.config.auth.supabaseAnonKey ?? '' },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      if (!res.ok) {
        this.logger.warn({ status: res.status }, 'Supabase did not return the user; its e-mail counts as unverified');
        return false;
      }
      const user = (await res.json()) as { email?: unknown; email_confirmed_at?: unknown; is_anonymous?: unknown };
      return typeof user.email === 'string' && normalizeEmail(user.email) === email
        && typeof user.email_confirmed_at === 'string' && user.email_confirmed_at !== '' && user.is_anonymous !== true;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'Supabase Auth unreachable; the e-mail counts as unverified');
      return false;
    }
  }

  /**
   * Whether the project confirms e-mail addresses by mail: its settings say `mailer_autoconfirm: false`.
   * A setting that cannot be read counts as auto-confirming, and is asked again only after SETTINGS_FAILURE_TTL_MS.
   */
  async projectConfirmsEmails(): Promise<boolean> {
    const now = this.clock.now();
    if (this.settingsFailedAt !== undefined && now - this.settingsFailedAt < SETTINGS_FAILURE_TTL_MS) return false;
    if (this.settings && now - this.settings.readAt < SETTINGS_TTL_MS) return !this.settings.mailerAutoconfirm;
    try {
      const res = await fetch(new URL('/auth/v1/settings', this.config.auth.supabaseUrl), {
        headers: { apikey: this.config.auth.supabaseAnonKey ?? '' },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      const body = res.ok ? ((await res.json()) as { mailer_autoconfirm?: unknown }) : undefined;
      if (typeof body?.mailer_autoconfirm !== 'boolean') {
        this.logger.warn({ status: res.status }, 'Supabase Auth settings unreadable; no e-mail of the project counts as verified');
        this.settingsFailedAt = this.clock.now();
        return false;
      }
      this.settings = { mailerAutoconfirm: body.mailer_autoconfirm, readAt: now };
      this.settingsFailedAt = undefined;
      if (body.mailer_autoconfirm) this.logger.warn('the Supabase project auto-confirms e-mail sign-ups; its e-mails count as unverified');
      return !body.mailer_autoconfirm;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'Supabase Auth unreachable; no e-mail of the project counts as verified');
      this.settingsFailedAt = this.clock.now();
      return false;
    }
  }
}
