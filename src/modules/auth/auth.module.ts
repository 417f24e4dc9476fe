import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { AuthController, SessionsController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { AuthBridge } from './auth-bridge.js';
import { SessionPurgeJob } from './purge.job.js';
import { JwtAuthGuard } from './jwt-auth.guard.js';
import { JwtStrategy } from './jwt.strategy.js';
import { LoginThrottle } from './login-throttle.service.js';
import { TokenService } from './token.service.js';

@Module({
  imports: [PassportModule],
  controllers: [AuthController, SessionsController],
  providers: [AuthService, AuthBridge, SessionPurgeJob, TokenService, LoginThrottle, JwtStrategy, { provide: APP_GUARD, useClass: JwtAuthGuard }],
  exports: [AuthService, AuthBridge, TokenService],
})
export class AuthModule {}
