import { Module } from '@nestjs/common';
import { SemanticQueryController, SemanticViewsController } from './semantic.controller.js';
import { SemanticService } from './semantic.service.js';

/** The semantic layer's endpoints: the views as a catalog and the guarded read-only query (issue 16). */
@Module({
  controllers: [SemanticViewsController, SemanticQueryController],
  providers: [SemanticService],
  exports: [SemanticService],
})
export class SemanticModule {}
