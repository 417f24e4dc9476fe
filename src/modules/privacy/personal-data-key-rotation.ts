import type { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { AuditService } from '../audit/audit.service.js';
import { SecretOpenError, type SecretBox } from '../integrations/secret-box.js';
import { AuditSealer } from './audit-sealing.js';
import { personalDataKeyRepository as repo } from './personal-data-key.repository.js';

const FIRST = '00000000-0000-0000-0000-000000000000';

/**
 * `npm run secrets:rotate`, for the per-person keys that seal personal fields of audit snapshots: every key not
 * wrapped under the active key (or stored unwrapped, before SECRETS_KEYS was set) is wrapped again, in short batches
 * on the privileged path secrets.rotate, so the old key can be removed from SECRETS_KEYS without making sealed
 * snapshots unreadable. The keys themselves do not change. Each re-wrap is audited in the organization whose audit
 * trail the key seals. Resumable; keys no configured key opens, or that seal no audit entry, are reported and left.
 */
export async function rewrapPersonalDataKeys(
  privileged: PrivilegedDatabase,
  box: SecretBox,
  audit: AuditService,
  batchSize = 100,
): Promise<{ total: number; rewrapped: number; failed: string[]; remaining: number }> {
  const active = box.activeKeyId;
  if (!active || !box.configured) throw new Error('no active key: set SECRETS_KEYS and SECRETS_ACTIVE_KEY');
  const sealer = new AuditSealer(box);
  const total = await privileged.run('secrets.rotate', (db) => repo.countStale(db, active));
  let rewrapped = 0;
  const failed: string[] = [];
  let cursor = FIRST;
  for (;;) {
    const rows = await privileged.run('secrets.rotate', async (db) => {
      const batch = await repo.lockStale(db, active, cursor, batchSize);
      for (const row of batch) {
        let wrapped: unknown;
        try {
          wrapped = sealer.rewrap(row.id, row.wrapped);
        } catch (err) {
          if (!(err instanceof SecretOpenError)) throw err;
          failed.push(row.id);
          continue;
        }
        if (!row.org_id) {
          failed.push(row.id); // seals no audit entry: nowhere to audit its re-wrap, and nothing it protects
          continue;
        }
        await repo.rewrap(db, row.id, wrapped);
        await audit.recordPrivileged(db, row.org_id, 'system', {
          action: 'privacy.personal_data_key_rewrapped', entityType: 'personal_data_key', entityId: row.id,
          before: { keyId: (row.wrapped as { kid?: string }).kid ?? null }, after: { keyId: active },
        });
        rewrapped++;
      }
      return batch;
    });
    if (rows.length === 0) break;
    cursor = rows[rows.length - 1].id;
  }
  const remaining = await privileged.run('secrets.rotate', (db) => repo.countStale(db, active));
  return { total, rewrapped, failed, remaining };
}
