import { Module } from '@nestjs/common';
import { APP_CONFIG } from '../../platform/config/config.js';
import { registerOpenApiSchemas } from '../../platform/http/openapi.js';
import { BillingModule } from '../billing/billing.module.js';
import { secretBoxFromConfig } from '../integrations/integrations.module.js';
import { SECRET_BOX } from '../integrations/secret-box.js';
import { WebhookDelivery } from './webhook-delivery.service.js';
import { WebhookEndpointsController, WebhookEventTypesController } from './webhooks.controller.js';
import { WebhooksService } from './webhooks.service.js';

// the delivered body of every event type, as component schemas of the OpenAPI document
registerOpenApiSchemas(WebhooksService.bodySchemas);

/** Outbound webhooks (issue 18): the event catalog, endpoints, signed delivery with retries, the delivery log. */
@Module({
  imports: [BillingModule],
  controllers: [WebhookEventTypesController, WebhookEndpointsController],
  providers: [
    WebhooksService,
    WebhookDelivery,
    { provide: SECRET_BOX, useFactory: secretBoxFromConfig, inject: [APP_CONFIG] },
  ],
  exports: [WebhooksService, WebhookDelivery],
})
export class WebhooksModule {}
