import { Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { IntegrationsController, MyProviderController, PublicProvidersController } from './integrations.controller.js';
import { IntegrationsService } from './integrations.service.js';
import { ProvidersService } from './providers.service.js';
import { PublicProvidersService } from './public-providers.service.js';
import { SECRET_BOX, SecretBox } from './secret-box.js';

/** The app's key set, as configuration gives it (SECRETS_KEYS, SECRETS_ACTIVE_KEY). */
export const secretBoxFromConfig = (c: AppConfig) => new SecretBox(c.secrets.keys, c.secrets.activeKeyId);

/** Seed 004: user integrations with encrypted secrets, provider profiles and public pages (issue 5). */
@Module({
  controllers: [IntegrationsController, MyProviderController, PublicProvidersController],
  providers: [
    IntegrationsService,
    ProvidersService,
    PublicProvidersService,
    { provide: SECRET_BOX, useFactory: secretBoxFromConfig, inject: [APP_CONFIG] },
  ],
})
export class IntegrationsModule {}
