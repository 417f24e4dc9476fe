import { loadConfig } from '../../src/platform/config/config.js';
import { migrate } from '../../src/platform/database/migrator.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';
import { startApp, type TestApp } from '../support/app.js';
import { createTestDatabase } from '../support/database.js';
import { startEmbeddingsDouble, type EmbeddingsDouble } from '../support/doubles/embeddings-double.js';

export type StoragePath = 'default' | 'array';

export interface KnowledgeApp extends TestApp {
  embeddings: EmbeddingsDouble;
  /** runs the queued jobs (ingestion) to completion, in-process */
  ingest(): Promise<number>;
  /** the storage the migration chose for this database */
  storage: 'vector' | 'array';
}

/**
 * The application over a database of this file's own, with the embeddings double as its provider. `array`: the
 * database is migrated from scratch with omnizen.knowledge_embedding_storage = 'array' (the real[] path, whatever
 * the server has); `default`: cloned from the run's template (pgvector where the server has it).
 * Jobs run in-process (no REDIS_URL), so `ingest()` returns when ingestion has finished: no waiting on a clock.
 */
export async function startKnowledgeApp(path: StoragePath = 'default', env: Record<string, string> = {}): Promise<KnowledgeApp> {
  const embeddings = await startEmbeddingsDouble();
  const db = await createTestDatabase(path === 'array' ? { template: null } : {});
  if (path === 'array') {
    await db.admin.query(`ALTER DATABASE "${db.name}" SET omnizen.knowledge_embedding_storage = 'array'`);
    await migrate(db.url, { apiPassword: 'omnizen_api_test', log: () => undefined });
  }
  const config = loadConfig({
    ...process.env, NODE_ENV: 'test', DATABASE_URL: db.url, API_DATABASE_URL: db.apiUrl, API_DATABASE_POOL_SIZE: '8',
    REDIS_URL: undefined, REDIS_PREFIX: `test:${db.name}`, JOBS_RELAY_INTERVAL_MS: '0', MIGRATE_ON_START: 'false',
    AI_BASE_URL: embeddings.url, AI_API_KEY: embeddings.apiKey, AI_EMBEDDING_MODEL: 'double-hash-256', AI_EMBEDDING_DIMENSIONS: '256',
    KNOWLEDGE_CHUNK_TOKENS: '64', KNOWLEDGE_CHUNK_OVERLAP_TOKENS: '8',
    // retried as in production (a reused keep-alive socket can be reset), without backoff on the wall clock
    AI_MAX_RETRIES: '2', AI_RETRY_BASE_MS: '0',
    ...env,
  });
  const { app, http, contract } = await startApp(config);
  const [{ storage }] = (await db.admin.query('SELECT ai.embedding_storage() AS storage')).rows;
  return {
    app, http, config, db, contract, embeddings, storage,
    ingest: () => app.get(OutboxRelay).drain(),
    async close() {
      await app.close();
      await db.drop();
      await embeddings.close();
      if (contract.violations.length > 0) throw new Error(`responses that do not match the OpenAPI document:\n${contract.violations.join('\n')}`);
    },
  };
}

/** A one-page PDF whose page shows `lines` (Helvetica), with a correct cross-reference table. */
export function makePdf(lines: string[]): Buffer {
  const esc = (s: string) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const stream = `BT /F1 12 Tf 72 720 Td 14 TL ${lines.map((l) => `(${esc(l)}) Tj T*`).join(' ')} ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${Buffer.byteLength(stream)} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}
