import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { DECORATORS } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error.js';

/**
 * A multipart/form-data body only where the operation declares one (`@ApiConsumes('multipart/form-data')`: the knowledge
 * uploads, which read it themselves). @fastify/multipart accepts the media type on every route and leaves the body unread,
 * so anywhere else the route ran as if no body had been sent (PATCH /v1/orgs/{id} with a form answered 200, bumped
 * updatedAt and wrote an audit row): there it is a 415, as a form or text/plain is (json-body.ts). Global, after the
 * application's guards (bootstrap.ts): with cookie authentication the CSRF guard's 403 still comes first.
 */
@Injectable()
export class MultipartRouteGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType() !== 'http') return true;
    // set by @fastify/multipart's parser, which runs only where Fastify reads a body (not on GET or HEAD)
    if (!context.switchToHttp().getRequest<FastifyRequest>().isMultipart()) return true;
    const consumes = this.reflector.getAllAndOverride<string[] | undefined>(DECORATORS.API_CONSUMES, [context.getHandler(), context.getClass()]);
    if (consumes?.some((type) => type.split(';')[0].trim().toLowerCase() === 'multipart/form-data')) return true;
    throw new AppError(415, 'unsupported_media_type', 'send the body as application/json: only the file uploads take multipart/form-data');
  }
}
