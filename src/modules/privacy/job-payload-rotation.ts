import type { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { resealedPayload, SEALED_PAYLOAD_KEY } from '../../platform/queue/jobs.js';
import { countStaleSealedPayloads, lockStaleSealedPayloads, replacePayload } from '../../platform/queue/outbox.repository.js';
import { POSTHOG_ERASURE_JOB } from '../analytics/posthog.forwarder.js';
import type { AuditService } from '../audit/audit.service.js';
import { SecretOpenError, type SecretBox } from '../integrations/secret-box.js';

const FIRST = { orgId: '00000000-0000-0000-0000-000000000000', id: '0' };

/**
 * The job topics whose payloads are personal data, as the application registers them (JobOptions.personalData): the
 * rotation runs without the application, so without its JobRegistry (test/privacy/key-rotation.test.ts compares the two).
 */
export const PERSONAL_DATA_JOB_TOPICS: readonly string[] = [POSTHOG_ERASURE_JOB];

/**
 * `npm run secrets:rotate`, for the payloads of personal-data job topics (JobOptions.personalData: a PostHog erasure's
 * distinct ids), waiting or dead: every one not sealed under the active key is sealed again, in short batches on the
 * privileged path secrets.rotate, so the old key can be removed from SECRETS_KEYS without such a job failing to open
 * until it is dead (the persons it deletes never deleted). One still in the clear (written before its topic was sealed,
 * or without SECRETS_KEYS) is sealed too; a done one's is emptied (`{}`, as the relay empties it). The content does not
 * change. Each is audited in the job's organization, with ids only (jobs.payload_resealed, the key before it null for
 * one in the clear; jobs.payload_emptied). Resumable; payloads no configured key opens are reported (`<org>:<id>`) and left.
 */
export async function resealJobPayloads(
  privileged: PrivilegedDatabase,
  box: SecretBox,
  audit: AuditService,
  batchSize = 100,
): Promise<{ total: number; resealed: number; emptied: number; failed: string[]; remaining: number }> {
  const active = box.activeKeyId;
  if (!active || !box.configured) throw new Error('no active key: set SECRETS_KEYS and SECRETS_ACTIVE_KEY');
  const topics = PERSONAL_DATA_JOB_TOPICS;
  const total = await privileged.run('secrets.rotate', (db) => countStaleSealedPayloads(db, active, topics));
  let resealed = 0;
  let emptied = 0;
  const failed: string[] = [];
  let cursor = FIRST;
  for (;;) {
    const rows = await privileged.run('secrets.rotate', async (db) => {
      const batch = await lockStaleSealedPayloads(db, active, topics, cursor, batchSize);
      for (const row of batch) {
        if (row.done) {
          await replacePayload(db, row.org_id, row.id, {});
          await audit.recordPrivileged(db, row.org_id, 'system', { action: 'jobs.payload_emptied', entityType: 'outbox_job', entityId: row.id });
          emptied++;
          continue;
        }
        let payload: Record<string, unknown>;
        try {
          payload = resealedPayload(box, row.org_id, row.topic, row.payload);
        } catch (err) {
          if (!(err instanceof SecretOpenError)) throw err;
          failed.push(`${row.org_id}:${row.id}`);
          continue;
        }
        await replacePayload(db, row.org_id, row.id, payload);
        await audit.recordPrivileged(db, row.org_id, 'system', {
          action: 'jobs.payload_resealed', entityType: 'outbox_job', entityId: row.id,
          before: { keyId: (row.payload[SEALED_PAYLOAD_KEY] as { kid?: string } | undefined)?.kid ?? null }, after: { keyId: active },
        });
        resealed++;
      }
      return batch;
    });
    if (rows.length === 0) break;
    cursor = { orgId: rows[rows.length - 1].org_id, id: rows[rows.length - 1].id };
  }
  const remaining = await privileged.run('secrets.rotate', (db) => countStaleSealedPayloads(db, active, topics));
  return { total, resealed, emptied, failed, remaining };
}
