import type { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { AuditService } from '../audit/audit.service.js';
import { SecretOpenError, type SecretBox } from '../integrations/secret-box.js';
import { agentsRepository as repo } from './agents.repository.js';
import { providerKeyOwner } from './provider-keys.service.js';

/**
 * Re-seals the organizations' provider keys that are not under the active key (npm run secrets:rotate, after the
 * integration secrets), one short transaction per key on the privileged path secrets.rotate, audited.
 */
export async function rotateProviderKeys(privileged: PrivilegedDatabase, box: SecretBox, audit: AuditService): Promise<{ resealed: number; failed: string[] }> {
  const active = box.activeKeyId;
  if (!active || !box.configured) throw new Error('no active key: set SECRETS_KEYS and SECRETS_ACTIVE_KEY');
  const stale = await privileged.run('secrets.rotate', (db) => repo.staleProviderKeys(db, active));
  const result = { resealed: 0, failed: [] as string[] };
  for (const orgId of stale) {
    await privileged.run('secrets.rotate', async (db) => {
      const row = await repo.lockProviderKey(db, orgId);
      if (!row || !box.isStale(row.secret)) return;
      let plain: unknown;
      try {
        plain = box.open(row.secret, providerKeyOwner(orgId));
      } catch (err) {
        if (!(err instanceof SecretOpenError)) throw err;
        result.failed.push(orgId);
        return;
      }
      const sealed = box.seal(plain, providerKeyOwner(orgId));
      await repo.resealProviderKey(db, orgId, sealed);
      await audit.recordPrivileged(db, orgId, 'system', {
        action: 'ai.provider_key_resealed', entityType: 'ai_provider_key', entityId: orgId,
        before: { keyId: (row.secret as { kid?: string }).kid ?? null }, after: { keyId: sealed.kid },
      });
      result.resealed++;
    });
  }
  return result;
}
