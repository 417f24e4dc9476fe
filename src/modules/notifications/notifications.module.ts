import { Global, Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { EmailDeliveryService, EmailLinks } from './email-delivery.service.js';
import { Mailer } from './mailer.service.js';
import { NotificationStream } from './notification-stream.js';
import { NotificationsController, NotificationStreamController } from './notifications.controller.js';
import { NotificationsService } from './notifications.service.js';

/**
 * E-mail and in-app notices. Global: auth and organizations register the links of their e-mails
 * (EmailLinks) and queue account e-mails (queueEmail) without a module cycle.
 */
@Global()
@Module({
  // the stream checks that its token's session is still live (SessionLiveness)
  imports: [AuthModule],
  controllers: [NotificationsController, NotificationStreamController],
  providers: [Mailer, EmailLinks, EmailDeliveryService, NotificationStream, NotificationsService],
  exports: [EmailLinks, Mailer],
})
export class NotificationsModule {}
