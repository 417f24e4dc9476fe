import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, uniqueEmail } from '../support/factories.js';
import { PasswordHasher } from '../../src/modules/auth/password-hasher.js';

/** An error of a kind the API does not expect anywhere: the error filter answers it 500 internal and logs it. */
class HasherPoolBroken extends Error {
  override name = 'HasherPoolBroken';
}

/**
 * A 500 in a test says what the server threw: the contract check puts the error the application logged for the request
 * (its name, message and stack) into the violation, and so into the answer's body and the factories' failures. A login
 * answered 500 once in a full CI run (2026-12) with nothing but "status 500 is not documented".
 */
describe('a 500 in a test application carries the error the server logged', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('in the violation and the answer of the request', async () => {
    const user = await registerUser(t, 'broken-hasher');
    const hasher = jest.spyOn(t.app.get(PasswordHasher), 'verify').mockRejectedValueOnce(new HasherPoolBroken('argon2 thread pool gone (violation)'));
    try {
      const res = await t.http.post('/v1/auth/login').send({ email: user.email, password: 'correct horse battery' });
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe('contract.response_mismatch');
      const violations = t.contract.violations.splice(0);
      expect(violations).toEqual([expect.stringContaining('POST /v1/auth/login → 500: status 500 is not documented')]);
      // the name and message, and the stack: a frame of this file, where it was thrown
      expect(violations[0]).toMatch(/the server logged: unhandled error: HasherPoolBroken: argon2 thread pool gone \(violation\)\n\s+at .*test-app-server-errors\.test\.ts/);
      expect(res.body.error.message).toBe(violations[0]);
    } finally {
      hasher.mockRestore();
    }
  });

  it('in the failure of a factory that met it', async () => {
    const hasher = jest.spyOn(t.app.get(PasswordHasher), 'verify').mockRejectedValueOnce(new HasherPoolBroken('argon2 thread pool gone (factory)'));
    try {
      const failure = await registerUser(t, 'factory', 'correct horse battery', uniqueEmail('factory')).then(() => undefined, (err: Error) => err.message);
      expect(failure).toMatch(/^expected 200, got 500: POST \/v1\/auth\/login → 500: .*\n {2}the server logged: unhandled error: HasherPoolBroken: argon2 thread pool gone \(factory\)\n\s+at /);
    } finally {
      hasher.mockRestore();
      t.contract.violations.splice(0);
    }
  });
});
