import type { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { AuditService } from '../audit/audit.service.js';
import { SecretOpenError, type SealedSecret, type SecretBox } from '../integrations/secret-box.js';
import { webhookRepository as repo } from './webhook.repository.js';
import { secretContext } from './webhooks.service.js';

const FIRST = { orgId: '00000000-0000-0000-0000-000000000000', id: '00000000-0000-0000-0000-000000000000' };

/**
 * `npm run secrets:rotate`, for webhook signing secrets: re-seals every endpoint's secret (and the previous one of
 * a rotation in its overlap) that is not under the active key, in short batches on the privileged path
 * secrets.rotate, so the old key can be removed from SECRETS_KEYS afterwards. The secrets themselves do not change
 * (receivers verify as before). Resumable; rows no configured key opens are reported and left alone.
 */
export async function resealWebhookSecrets(
  privileged: PrivilegedDatabase,
  box: SecretBox,
  audit: AuditService,
  batchSize = 100,
): Promise<{ total: number; resealed: number; failed: string[]; remaining: number }> {
  const active = box.activeKeyId;
  if (!active || !box.configured) throw new Error('no active key: set SECRETS_KEYS and SECRETS_ACTIVE_KEY');
  const total = await privileged.run('secrets.rotate', (db) => repo.countStaleSecrets(db, active));
  let resealed = 0;
  const failed: string[] = [];
  let cursor = FIRST;
  for (;;) {
    const rows = await privileged.run('secrets.rotate', async (db) => {
      const batch = await repo.lockStaleSecrets(db, active, cursor, batchSize);
      for (const row of batch) {
        const context = secretContext(row.org_id, row.id);
        let secret: SealedSecret;
        let previous: SealedSecret | null;
        try {
          secret = box.sealFor(box.openFor<string>(row.secret, context), context);
          previous = row.previous_secret ? box.sealFor(box.openFor<string>(row.previous_secret, context), context) : null;
        } catch (err) {
          if (!(err instanceof SecretOpenError)) throw err;
          failed.push(row.id);
          continue;
        }
        await repo.resealSecrets(db, row.org_id, row.id, secret, previous);
        await audit.recordPrivileged(db, row.org_id, 'system', {
          action: 'webhooks.secret_resealed', entityType: 'webhook_endpoint', entityId: row.id,
          before: { keyId: (row.secret as { kid?: string }).kid ?? null }, after: { keyId: secret.kid },
        });
        resealed++;
      }
      return batch;
    });
    if (rows.length === 0) break;
    cursor = { orgId: rows[rows.length - 1].org_id, id: rows[rows.length - 1].id };
  }
  const remaining = await privileged.run('secrets.rotate', (db) => repo.countStaleSecrets(db, active));
  return { total, resealed, failed, remaining };
}
