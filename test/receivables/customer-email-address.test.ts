import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, onEnterprisePlan, registerUser, type TestUser } from '../support/factories.js';
import { rUrl } from './receivables-support.js';

/**
 * A customer's billing e-mail is an address mail may be written to: plain IsEmail took a quoted local part holding CR/LF
 * (`"x\r\nBcc: y"@example.com`, a header of the sender's choosing where it is written into a mail). It is checked as the
 * accounts' addresses are now (IsEmailAddress): 400 validation_failed naming the field, nothing stored.
 */
describe('receivables: a customer\'s e-mail is a plain address', () => {
  let t: TestApp;
  let owner: TestUser;
  let orgId: string;
  const BAD = '"x\r\nBcc: y"@example.com';

  beforeAll(async () => {
    t = await createTestApp({ RATE_LIMITS_ENABLED: 'false' });
    owner = await registerUser(t, 'customer-email-owner');
    orgId = await createOrg(t, owner, 'Customer Mail Ltd');
    await onEnterprisePlan(t, orgId);
  });
  afterAll(() => t.close());

  const customers = async () => (await t.db.admin.query(`SELECT name, email FROM finance.customers WHERE org_id = $1 ORDER BY name`, [orgId])).rows;

  it('creating one with a quoted local part holding CR/LF: 400 naming email, no customer', async () => {
    const res = await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Header Injection Ltd', email: BAD }).expect(400);
    expect(res.body.error).toEqual({
      code: 'validation_failed', message: expect.stringContaining('email must not contain control characters'),
      details: [{ field: 'email', problems: ['email must not contain control characters (such as CR or LF)'] }],
    });
    expect(await customers()).toEqual([]);
  });

  it('changing its e-mail to one: 400 naming email, the address kept; a plain address still passes', async () => {
    const id = (await t.http.post(rUrl(orgId, 'customers')).set(owner.auth).send({ name: 'Plain Ltd', email: 'ap@plain.example' }).expect(201)).body.id as string;
    const res = await t.http.put(rUrl(orgId, `customers/${id}`)).set(owner.auth).send({ email: BAD }).expect(400);
    expect(res.body.error.details).toEqual([{ field: 'email', problems: ['email must not contain control characters (such as CR or LF)'] }]);
    expect(await customers()).toEqual([{ name: 'Plain Ltd', email: 'ap@plain.example' }]);
  });
});
