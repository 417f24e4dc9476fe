import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';

/** How long the exchange waits for the Supabase project before treating the e-mail as unproven. */
const TIMEOUT_MS = 5000;

/**
 * Whether a Supabase user's e-mail is confirmed. A Supabase access token does not say so in a claim
 * its user cannot change (user_metadata is theirs to edit), so the project's Auth API is asked, with
 * the user's own token: GET /auth/v1/user returns the user with `email_confirmed_at`. Asked only the
 * first time an identity signs in (or is linked), never per request. No answer: not proven.
 */
@Injectable()
export class SupabaseEmailCheck {
  private readonly logger = new Logger(SupabaseEmailCheck.name);

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  async isConfirmed(token: string, email: string): Promise<boolean> {
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
      return typeof user.email === 'string' && user.email.toLowerCase() === email
        && typeof user.email_confirmed_at === 'string' && user.email_confirmed_at !== '' && user.is_anonymous !== true;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'Supabase Auth unreachable; the e-mail counts as unverified');
      return false;
    }
  }
}
