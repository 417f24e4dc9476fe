import { Module } from '@nestjs/common';

/** Seed 004: user integrations with encrypted secrets, provider profiles and public pages (issue 5). */
@Module({})
export class IntegrationsModule {}
