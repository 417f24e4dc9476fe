import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';

/**
 * Delivers e-mail verification links. The mail itself comes with the notifications module; until
 * then development logs the link (so a developer can follow it) and other environments send
 * nothing -- the link never leaves the process outside development.
 */
@Injectable()
export class VerificationLinkSender {
  private readonly logger = new Logger('EmailVerification');

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  linkFor(token: string): string {
    return `${this.config.billing.appUrl.replace(/\/$/, '')}/verify-email?token=${encodeURIComponent(token)}`;
  }

  async send(to: { userId: string; email: string }, link: string): Promise<void> {
    if (this.config.nodeEnv === 'development') {
      this.logger.log({ userId: to.userId, email: to.email, link }, 'e-mail verification link (development: no mail is sent yet)');
    }
  }
}
