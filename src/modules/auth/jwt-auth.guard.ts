import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { IS_PUBLIC } from '../../platform/auth/public.decorator.js';
import { AppError } from '../../platform/errors/app-error.js';

/** Global guard: every route needs a valid token unless marked @Public() (then the caller is anonymous). */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()]);
    if (isPublic) {
      context.switchToHttp().getRequest().user = { kind: 'anonymous' };
      return true;
    }
    return (await super.canActivate(context)) as boolean;
  }

  override handleRequest<T>(err: unknown, user: T, info: unknown): T {
    if (err || !user) {
      const reason = info instanceof Error && info.name === 'TokenExpiredError' ? 'the access token has expired' : 'a valid access token is required';
      throw AppError.unauthorized(reason);
    }
    return user;
  }
}
