import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestApp, type TestApp } from '../support/app.js';
import { createOrg, registerUser, type TestUser } from '../support/factories.js';
import { DatabaseService, type TenantTx } from '../../src/platform/database/database.service.js';
import type { Principal } from '../../src/platform/auth/principal.js';
import { invitationRepository } from '../../src/modules/organizations/invitation.repository.js';
import { AppError } from '../../src/platform/errors/app-error.js';

/**
 * invitationRepository.readAsNewMember reads inside the organization just joined under claims naming it, then puts the
 * request's claims (the ones begin_request verified) back: also when the read throws, so a caller that catches the
 * refusal and goes on acts with its own claims again, not with unverified ones naming another organization.
 */
describe('invitationRepository.readAsNewMember', () => {
  let t: TestApp;
  let owner: TestUser;
  let principal: Principal;
  let orgId: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await registerUser(t, 'owner');
    principal = { kind: 'user', userId: owner.id, email: owner.email, personalOrgId: owner.personalOrgId };
    orgId = await createOrg(t, owner, 'Joined Co');
  });
  afterAll(() => t.close());

  /** The transaction's claims as the database sees them: raw, the organization they name, and whether verified. */
  const claimsOf = async (tx: TenantTx) => (await tx.db.$queryRaw<{ claims: string; org: string | null; verified: boolean }[]>`
    SELECT current_setting('request.jwt.claims') AS claims, public.auth_org_id()::text AS org, public.auth_claims_verified() AS verified`)[0];
  const inPersonalOrg = <T>(work: (tx: TenantTx) => Promise<T>) =>
    t.app.get(DatabaseService).tenant(principal, owner.personalOrgId, { requestId: 'read-as-new-member' }, work);

  it('reads inside the organization and puts the request\'s claims back after', async () => {
    await inPersonalOrg(async (tx) => {
      const before = await claimsOf(tx);
      expect(before).toMatchObject({ org: owner.personalOrgId, verified: true });
      const inside = await invitationRepository.readAsNewMember(tx.db, principal, orgId, async () => ({
        claims: await claimsOf(tx), members: await invitationRepository.memberCount(tx.db, orgId),
      }));
      expect(inside).toMatchObject({ claims: { org: orgId, verified: false }, members: 1 });
      expect(await claimsOf(tx)).toEqual(before);
    });
  });

  it('puts them back when the read throws, and the error is the read\'s', async () => {
    const refusal = new AppError(402, 'billing.limit_reached', 'refused');
    await inPersonalOrg(async (tx) => {
      const before = await claimsOf(tx);
      await expect(invitationRepository.readAsNewMember(tx.db, principal, orgId, async () => { throw refusal; })).rejects.toBe(refusal);
      expect(await claimsOf(tx)).toEqual(before);
    });
  });

  it('a failed statement in the read (the transaction aborted): the read\'s error, not the restore\'s', async () => {
    await expect(inPersonalOrg((tx) => invitationRepository.readAsNewMember(tx.db, principal, orgId, async () => {
      await tx.db.$queryRaw`SELECT 1 / 0`;
    }))).rejects.toMatchObject({ message: expect.stringContaining('division by zero') });
  });
});
