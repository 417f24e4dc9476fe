import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { PrivacyController } from './privacy.controller.js';
import { ErasureService } from './erasure.service.js';

/** Personal data (issue 20): the catalog (personal-data.catalog.ts), erasure; docs/privacy.md. */
@Module({
  imports: [AuthModule],
  controllers: [PrivacyController],
  providers: [ErasureService],
})
export class PrivacyModule {}
