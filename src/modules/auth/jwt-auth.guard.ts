import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { IS_PUBLIC } from '../../platform/auth/public.decorator.js';
import { AppError } from '../../platform/errors/app-error.js';
import { isOrgRoute, runsTenantTransaction } from '../../platform/http/tenant.js';
import type { Principal } from '../../platform/auth/principal.js';
import { SessionLiveness } from './session-liveness.js';
import { apiKeyPrincipal, API_KEY_BEARER } from '../api-keys/api-key-secret.js';

/**
 * Global guard: every route needs a valid token unless marked @Public() (then the caller is anonymous). A user's access
 * token of an ended session (logout, revocation, password reset) stops working at once: in the tenant transaction
 * (begin_request) on the routes that have one, here on the others.
 */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  constructor(private readonly reflector: Reflector, private readonly sessions: SessionLiveness) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()]);
    if (isPublic) {
      context.switchToHttp().getRequest().user = { kind: 'anonymous' };
      return true;
    }
    const req = context.switchToHttp().getRequest();
    const authorization: unknown = req.headers?.authorization;
    if (typeof authorization === 'string' && API_KEY_BEARER.test(authorization)) {
      // verified by the database in the tenant transaction (begin_key_request); only organization routes have one
      if (!isOrgRoute(this.reflector, context)) {
        throw AppError.forbidden('api_keys.route_closed', 'API keys work only on the organization routes /v1/orgs/{orgId}/...; this route needs a user token');
      }
      const principal = apiKeyPrincipal(authorization);
      if (!principal) throw AppError.unauthorized('the API key is malformed (expected ozk_live_<id>_<secret>)');
      req.user = principal;
      return true;
    }
    const ok = (await super.canActivate(context)) as boolean;
    const principal = req.user as Principal | undefined;
    if (ok && principal && !runsTenantTransaction(this.reflector, context) && !(await this.sessions.isLive(principal))) {
      throw AppError.unauthorized('the session of this access token has ended; log in again');
    }
    return ok;
  }

  override handleRequest<T>(err: unknown, user: T, info: unknown): T {
    if (err || !user) {
      const reason = info instanceof Error && info.name === 'TokenExpiredError' ? 'the access token has expired' : 'a valid access token is required';
      throw AppError.unauthorized(reason);
    }
    return user;
  }
}
