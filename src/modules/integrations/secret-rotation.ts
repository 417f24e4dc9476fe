import type { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { AuditService } from '../audit/audit.service.js';
import { integrationRepository as repo } from './integration.repository.js';
import { SecretOpenError, type SecretBox } from './secret-box.js';

export interface RotationProgress {
  /** secrets not yet under the active key when the run started */
  total: number;
  resealed: number;
  /** integration ids whose secret no configured key could open (left untouched) */
  failed: string[];
}

const FIRST_ID = '00000000-0000-0000-0000-000000000000';

/**
 * Re-seals every integration secret that is not under the active key, in batches: each batch is
 * one short transaction on the privileged path secrets.rotate that locks only its rows (SKIP
 * LOCKED: a row being written by a request is left to that request, which seals under the active
 * key itself). The API keeps serving meanwhile, because every configured key still opens what it
 * sealed. Resumable: a new run starts from whatever is still not under the active key.
 */
export async function rotateSecrets(
  privileged: PrivilegedDatabase,
  box: SecretBox,
  audit: AuditService,
  options: { batchSize?: number; onStart?: (total: number) => void; onProgress?: (p: RotationProgress) => void } = {},
): Promise<RotationProgress & { remaining: number }> {
  const active = box.activeKeyId;
  if (!active || !box.configured) throw new Error('no active key: set SECRETS_KEYS and SECRETS_ACTIVE_KEY');
  const batchSize = options.batchSize ?? 100;
  const progress: RotationProgress = { total: await privileged.run('secrets.rotate', (db) => repo.countStaleSecrets(db, active)), resealed: 0, failed: [] };
  options.onStart?.(progress.total);
  let cursor = FIRST_ID;
  for (;;) {
    const seen = await privileged.run('secrets.rotate', async (db) => {
      const rows = await repo.lockStaleSecrets(db, active, cursor, batchSize);
      for (const row of rows) {
        const owner = { integrationId: row.integration_id, userId: row.user_id };
        let plain: unknown;
        try {
          plain = box.open(row.secret, owner);
        } catch (err) {
          if (!(err instanceof SecretOpenError)) throw err;
          progress.failed.push(row.integration_id);
          continue;
        }
        const sealed = box.seal(plain, owner);
        await repo.resealSecret(db, row.integration_id, sealed);
        if (row.org_id) {
          await audit.recordPrivileged(db, row.org_id, 'system', {
            action: 'integration.secret_resealed', entityType: 'integration', entityId: row.integration_id,
            before: { keyId: (row.secret as { kid?: string }).kid ?? null }, after: { keyId: sealed.kid },
          });
        }
        progress.resealed++;
      }
      return rows;
    });
    if (seen.length === 0) break;
    cursor = seen[seen.length - 1].integration_id;
    options.onProgress?.(progress);
  }
  const remaining = await privileged.run('secrets.rotate', (db) => repo.countStaleSecrets(db, active));
  return { ...progress, remaining };
}
