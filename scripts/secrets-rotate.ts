// npm run secrets:rotate [-- --batch-size 100]
// Re-seals every integration secret, AI provider key and webhook signing secret, and the payloads of personal-data jobs
// waiting or dead (a PostHog erasure's distinct ids; one still in the clear, written before the deploy that seals them or
// without SECRETS_KEYS, is sealed, a done one's emptied), and re-wraps every per-person audit key (personal data), under
// SECRETS_ACTIVE_KEY. Order of a key change:
//  1. add the new key to SECRETS_KEYS and make it SECRETS_ACTIVE_KEY in the API (old keys stay listed,
//     so every secret still opens and new writes use the new key);
//  2. run this command with the same configuration; it works row by row in short transactions;
//  3. when it reports 0 remaining, remove the old keys from SECRETS_KEYS.
// Safe to interrupt and run again: rows already under the active key are skipped.
import cliProgress from 'cli-progress';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { projectRoot } from '../src/platform/database/migrator.js';
import { ensureDatabaseUrl } from '../src/platform/database/local-postgres.js';
import { PrivilegedDatabase } from '../src/platform/database/privileged.service.js';
import { AuditService } from '../src/modules/audit/audit.service.js';
import { secretBoxFromConfig } from '../src/modules/integrations/integrations.module.js';
import { rotateSecrets } from '../src/modules/integrations/secret-rotation.js';
import { rotateProviderKeys } from '../src/modules/agents/provider-key-rotation.js';
import { resealWebhookSecrets } from '../src/modules/webhooks/webhook-secret-rotation.js';
import { rewrapPersonalDataKeys } from '../src/modules/privacy/personal-data-key-rotation.js';
import { resealJobPayloads } from '../src/modules/privacy/job-payload-rotation.js';

const sizeIdx = process.argv.indexOf('--batch-size');
const batchSize = sizeIdx > 0 ? Number(process.argv[sizeIdx + 1]) : 100;
if (!Number.isInteger(batchSize) || batchSize < 1) {
  console.error('--batch-size must be a positive integer');
  process.exit(2);
}

const root = projectRoot();
loadLocalEnv(root);
process.env.DATABASE_URL = await ensureDatabaseUrl(root);
const config = loadConfig();
const box = secretBoxFromConfig(config);
const privileged = new PrivilegedDatabase(config);
const bar = new cliProgress.SingleBar(
  {
    format: 'secrets:rotate [{bar}] {value}/{total} re-sealed under key ' + (config.secrets.activeKeyId ?? '?'),
    hideCursor: true,
    noTTYOutput: true, // also in CI logs, where stderr is not a terminal
  },
  cliProgress.Presets.shades_classic,
);
let code = 0;
try {
  const result = await rotateSecrets(privileged, box, new AuditService(), {
    batchSize,
    onStart: (total) => bar.start(total, 0),
    onProgress: (p) => bar.update(p.resealed + p.failed.length),
  });
  bar.stop();
  console.log(`re-sealed ${result.resealed} of ${result.total}; ${result.remaining} not under the active key remain`);
  if (result.failed.length) {
    // ids only: which rows no configured key opens (their keys were removed too early, or the rows were tampered with)
    console.error(`could not open ${result.failed.length} secret(s): integrations ${result.failed.join(', ')}`);
    code = 1;
  }
  // the organizations' own AI provider keys, sealed with the same box
  const keys = await rotateProviderKeys(privileged, box, new AuditService());
  console.log(`re-sealed ${keys.resealed} AI provider key(s)`);
  if (keys.failed.length) {
    console.error(`could not open ${keys.failed.length} AI provider key(s): organizations ${keys.failed.join(', ')}`);
    code = 1;
  }
  const webhooks = await resealWebhookSecrets(privileged, box, new AuditService(), batchSize);
  console.log(`webhook signing secrets: re-sealed ${webhooks.resealed} of ${webhooks.total}; ${webhooks.remaining} not under the active key remain`);
  if (webhooks.failed.length) {
    console.error(`could not open ${webhooks.failed.length} webhook secret(s): endpoints ${webhooks.failed.join(', ')}`);
    code = 1;
  }
  // the per-person keys sealing personal fields of audit snapshots: unreadable once the old key is removed otherwise
  const personal = await rewrapPersonalDataKeys(privileged, box, new AuditService(), batchSize);
  console.log(`personal data keys: re-wrapped ${personal.rewrapped} of ${personal.total}; ${personal.remaining} not under the active key remain`);
  if (personal.failed.length) {
    console.error(`could not re-wrap ${personal.failed.length} personal data key(s): ${personal.failed.join(', ')}`);
    code = 1;
  }
  // the personal data of jobs still waiting or dead: a job whose payload no key opens fails until it is dead
  const jobs = await resealJobPayloads(privileged, box, new AuditService(), batchSize);
  const emptied = jobs.emptied ? ` (${jobs.emptied} of the ${jobs.total} done: emptied)` : '';
  console.log(`sealed job payloads: re-sealed ${jobs.resealed} of ${jobs.total}${emptied}; ${jobs.remaining} not under the active key remain`);
  if (jobs.failed.length) {
    console.error(`could not open ${jobs.failed.length} sealed job payload(s): outbox rows (organization:id) ${jobs.failed.join(', ')}`);
    code = 1;
  }
} catch (err) {
  bar.stop();
  console.error((err as Error).message);
  code = 1;
} finally {
  await privileged.onApplicationShutdown();
}
process.exit(code);
