import { Global, Module } from '@nestjs/common';
import { AuditService } from './audit.service.js';
import { AuditController } from './audit.controller.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { AuditSealer } from '../privacy/audit-sealing.js';
import { SecretBox } from '../integrations/secret-box.js';

@Global()
@Module({
  controllers: [AuditController],
  providers: [
    AuditService,
    // the personal fields of audit snapshots are sealed with per-person keys wrapped by the secret box (issue 20)
    { provide: AuditSealer, useFactory: (c: AppConfig) => new AuditSealer(new SecretBox(c.secrets.keys, c.secrets.activeKeyId)), inject: [APP_CONFIG] },
  ],
  exports: [AuditService, AuditSealer],
})
export class AuditModule {}
