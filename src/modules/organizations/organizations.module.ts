import { Module } from '@nestjs/common';
import { MyOrganizationsController, OrganizationController } from './organizations.controller.js';
import { OrganizationsService } from './organizations.service.js';

@Module({
  controllers: [MyOrganizationsController, OrganizationController],
  providers: [OrganizationsService],
  exports: [OrganizationsService],
})
export class OrganizationsModule {}
