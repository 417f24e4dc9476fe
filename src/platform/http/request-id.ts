import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

const WELL_FORMED = /^[\w.-]{1,128}$/;

/** Gives every request an id: the caller's x-request-id when well-formed, a UUID otherwise. */
export function requestId(req: Request, res: Response, next: NextFunction): void {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && WELL_FORMED.test(given) ? given : randomUUID();
  req.id = id;
  res.setHeader('x-request-id', id);
  next();
}

declare module 'node:http' {
  interface IncomingMessage {
    /** set by requestId(), the first middleware */
    id: string;
  }
}
