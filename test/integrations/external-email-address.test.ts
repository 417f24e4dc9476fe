import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { registerUser, type TestUser } from '../support/factories.js';

/**
 * An integration's external e-mail is an address that may be written into mail or a calendar invitation: plain IsEmail
 * took a quoted local part holding CR/LF (`"x\r\nBcc: y"@example.com`). It is checked as the accounts' addresses are now
 * (IsEmailAddress): 400 validation_failed naming the field, nothing stored.
 */
describe('integrations: the external e-mail is a plain address', () => {
  let t: TestApp;
  let ada: TestUser;

  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    ada = await registerUser(t, 'external-email');
  });
  afterAll(() => t.close());

  const integrations = async () => (await t.db.admin.query(`SELECT integration_type, external_email FROM public.integrations WHERE user_id = $1`, [ada.id])).rows;

  it('a quoted local part holding CR/LF: 400 naming externalEmail, no integration; a plain address still passes', async () => {
    const res = await t.http.post('/v1/me/integrations').set(ada.auth).send({ integrationType: 'caldav', externalEmail: '"x\r\nBcc: y"@example.com' }).expect(400);
    expect(res.body.error).toEqual({
      code: 'validation_failed', message: expect.stringContaining('externalEmail must not contain control characters'),
      details: [{ field: 'externalEmail', problems: ['externalEmail must not contain control characters (such as CR or LF)'] }],
    });
    expect(await integrations()).toEqual([]);
    await t.http.post('/v1/me/integrations').set(ada.auth).send({ integrationType: 'caldav', externalEmail: 'ada.o\'brien+cal@example.com' }).expect(201);
    expect(await integrations()).toEqual([{ integration_type: 'caldav', external_email: 'ada.o\'brien+cal@example.com' }]);
  });
});
