import { Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { IntegrationsController, MyProviderController, PublicProvidersController } from './integrations.controller.js';
import { IntegrationsService } from './integrations.service.js';
import { ProvidersService } from './providers.service.js';
import { PublicProvidersService } from './public-providers.service.js';
import { SECRET_BOX, SecretBox } from './secret-box.js';

/** Seed 004: user integrations with encrypted secrets, provider profiles and public pages (issue 5). */
@Module({
  controllers: [IntegrationsController, MyProviderController, PublicProvidersController],
  providers: [
    IntegrationsService,
    ProvidersService,
    PublicProvidersService,
    { provide: SECRET_BOX, useFactory: (c: AppConfig) => new SecretBox(c.secrets.keys, c.secrets.activeKeyId), inject: [APP_CONFIG] },
  ],
})
export class IntegrationsModule {}
