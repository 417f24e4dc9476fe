import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { ACCESS_COOKIE } from './jwt.strategy.js';
import { REFRESH_COOKIE } from './auth.controller.js';
import { AuthErrors } from './auth.errors.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * CSRF defence for AUTH_COOKIES=true. A browser attaches cookies to cross-site requests (SameSite=Lax
 * still lets top-level form POSTs through in some browsers, and forms need no preflight), so a
 * state-changing request that a cookie could authenticate -- or that sets cookies: every /v1/auth
 * route, login and refresh included -- must
 * - carry a JSON body (or none): an HTML form can only send urlencoded, multipart or text/plain, and
 *   a cross-origin JSON request needs a CORS preflight that CORS_ORIGINS decides;
 * - come from an origin in CORS_ORIGINS (Origin, or Referer when a browser left Origin out). A cookie
 *   request with neither is refused; a login without either (a non-browser client) is let through,
 *   since the JSON rule already stops forms.
 * Requests with a bearer token carry their credential explicitly and are not affected.
 */
@Injectable()
export class CookieCsrfGuard implements CanActivate {
  private readonly allowed: Set<string>;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.allowed = new Set(config.http.corsOrigins);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.config.auth.cookies || context.getType() !== 'http') return true;
    const req = context.switchToHttp().getRequest<FastifyRequest>();
    // a bearer token wins over the cookie (jwt.strategy.ts), and no cross-site form can send one
    if (SAFE_METHODS.has(req.method) || /^bearer\s/i.test(req.headers.authorization ?? '')) return true;
    const path = req.url.split('?')[0];
    const cookieAuthenticated = Boolean(req.cookies?.[ACCESS_COOKIE] || req.cookies?.[REFRESH_COOKIE]);
    if (!cookieAuthenticated && !path.startsWith('/v1/auth/')) return true;

    if (hasBody(req) && !isJson(req.headers['content-type'])) {
      throw AuthErrors.error('auth.csrf_rejected', 'with cookie authentication, requests that change state must send Content-Type: application/json');
    }
    const origin = originOf(req);
    if (origin === undefined) {
      if (!cookieAuthenticated) return true;
      throw AuthErrors.error('auth.csrf_rejected', 'a cookie-authenticated request that changes state must carry an Origin header');
    }
    if (!this.allowed.has(origin)) {
      throw AuthErrors.error('auth.csrf_rejected', `origin ${origin} is not allowed to send cookie-authenticated requests (CORS_ORIGINS)`);
    }
    return true;
  }
}

function hasBody(req: FastifyRequest): boolean {
  const length = req.headers['content-length'];
  return Boolean(req.headers['transfer-encoding']) || (length !== undefined && length !== '0');
}

function isJson(contentType: string | undefined): boolean {
  const type = contentType?.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || Boolean(type?.endsWith('+json'));
}

/** The request's origin: the Origin header, else the Referer's origin; "null" (sandboxed, file:) counts as foreign. */
function originOf(req: FastifyRequest): string | undefined {
  const origin = req.headers.origin;
  if (typeof origin === 'string' && origin) return origin;
  const referer = req.headers.referer;
  if (typeof referer === 'string' && referer) {
    try {
      return new URL(referer).origin;
    } catch {
      return 'null';
    }
  }
  return undefined;
}
