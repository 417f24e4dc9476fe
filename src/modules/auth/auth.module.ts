import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { OrganizationsModule } from '../organizations/organizations.module.js';
import { AuthController, IdentitiesController, SessionsController } from './auth.controller.js';
import { CookieCsrfGuard } from './cookie-csrf.guard.js';
import { PasswordHasher } from './password-hasher.js';
import { SupabaseEmailCheck } from './supabase-email-check.js';
import { AuthService } from './auth.service.js';
import { AuthBridge } from './auth-bridge.js';
import { SessionPurgeJob } from './purge.job.js';
import { JwtAuthGuard } from './jwt-auth.guard.js';
import { JwtStrategy } from './jwt.strategy.js';
import { LoginThrottle } from './login-throttle.service.js';
import { TokenService } from './token.service.js';
import { AccountMailService } from './account-mail.service.js';
import { AccountClaim } from './account-claim.service.js';
import { SessionLiveness } from './session-liveness.js';
import { SignInFailureAudit } from './sign-in-failure-audit.js';

@Module({
  imports: [PassportModule, OrganizationsModule],
  controllers: [AuthController, IdentitiesController, SessionsController],
  providers: [
    AuthService, AccountMailService, AccountClaim, AuthBridge, SessionLiveness, SignInFailureAudit, SessionPurgeJob, TokenService, LoginThrottle, PasswordHasher, SupabaseEmailCheck, JwtStrategy,
    // global guards run in this order: CSRF (cookie mode) before the token is even read
    { provide: APP_GUARD, useClass: CookieCsrfGuard },
    { provide: APP_GUARD, useClass: JwtAuthGuard },
  ],
  exports: [AuthService, AuthBridge, TokenService, PasswordHasher, LoginThrottle, SessionLiveness, SignInFailureAudit],
})
export class AuthModule {}
