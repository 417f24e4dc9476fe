import { describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import Fastify from 'fastify';
import request from 'supertest';
import { ResponseContract } from '../support/contract.js';

// The contract check of test/support/contract.ts on a document of one operation: an error answer's code must be
// declared for the operation (x-error-codes) or for every operation (x-generic-error-codes), with its status.

const ERROR = { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } };
const doc = {
  openapi: '3.0.0',
  info: { title: 't', version: '1' },
  'x-generic-error-codes': [{ code: 'rate_limited', status: 429, description: 'too many requests' }],
  paths: {
    '/v1/things/{thingId}': {
      get: {
        responses: { 200: { description: 'ok' }, 404: { description: 'not found', content: ERROR }, 409: { description: 'conflict', content: ERROR }, 429: { description: 'limited', content: ERROR } },
        'x-error-codes': [{ code: 'thing.not_found', status: 404, description: 'no such thing' }],
      },
    },
  },
  components: {
    schemas: {
      ErrorResponse: {
        type: 'object', required: ['error', 'requestId'],
        properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }, requestId: { type: 'string' } },
      },
    },
  },
} as unknown as OpenAPIObject;

const answer = (status: number, code: string) =>
  new ResponseContract(doc).check('GET', '/v1/things/:thingId', status, 'application/json; charset=utf-8', JSON.stringify({ error: { code, message: 'm' }, requestId: 'r' }));

describe('the contract check of error codes', () => {
  it('accepts a code the operation declares, with its status', () => {
    expect(answer(404, 'thing.not_found')).toBeUndefined();
  });

  it('accepts a generic code on any operation', () => {
    expect(answer(429, 'rate_limited')).toBeUndefined();
  });

  it('fails on a code the operation does not declare, even when its status is documented', () => {
    expect(answer(409, 'thing.taken')).toBe('GET /v1/things/:thingId → 409: error code "thing.taken" is not declared in x-error-codes (declared: thing.not_found; nor generic)');
    expect(answer(404, 'other.not_found')).toMatch(/error code "other\.not_found" is not declared/);
  });

  it('fails on a declared code answered with another status than declared', () => {
    expect(answer(409, 'thing.not_found')).toBe('GET /v1/things/:thingId → 409: error code "thing.not_found" is declared with status 404');
  });

  it('turns the answer into a 500 naming the undeclared code, so the test that caused it fails', async () => {
    const fastify = Fastify();
    const contract = new ResponseContract(doc);
    contract.attach(fastify);
    fastify.get('/v1/things/:thingId', async (_req, reply) => reply.code(409).send({ error: { code: 'thing.taken', message: 'taken' }, requestId: 'r' }));
    try {
      await fastify.ready();
      const res = await request(fastify.server).get('/v1/things/1');
      expect({ status: res.status, code: res.body.error.code }).toEqual({ status: 500, code: 'contract.response_mismatch' });
      expect(contract.violations).toEqual([expect.stringContaining('error code "thing.taken" is not declared in x-error-codes')]);
    } finally {
      await fastify.close();
    }
  });
});
