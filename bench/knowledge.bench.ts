// npm run bench:knowledge — the knowledge base: ingestion throughput and search latency at 100,000 chunks.
// Prints one JSON document; progress goes to stderr.
//
// It creates its own database (omnizen_bench_knowledge_<pid>) on DATABASE_URL's server, migrates it (pgvector where
// the server has the `vector` extension, else real[]; BENCH_STORAGE=array forces real[]), starts the app in this
// process with the OpenAI-compatible embeddings double (test/support/doubles, feature hashing, 256 dimensions) on
// 127.0.0.1, and drops the database at the end.
//   ingestion     BENCH_INGEST_DOCS (default 100) notes of ~4,000 tokens through POST /knowledge/documents, then the
//                 outbox drained in-process: chunks per second of the drain (chunking at 400/60 tokens, embedding
//                 through the double over HTTP, storing), from the first job to the last commit
//   fill          the organization is filled to BENCH_CHUNKS (default 100,000) chunks set-based (SQL, embeddings
//                 computed here with the double's function), spread over 10 collections; the HNSW index is
//                 rebuilt after the load (as a bulk load would), then VACUUM ANALYZE
//   search        BENCH_QUERIES (default 200) queries of 3 vocabulary words through POST /knowledge/search (top 10,
//                 hybrid), one at a time, as the owner: p50/p99 of the response time; again filtered to one
//                 collection (10 % of the chunks)
//   recall        (pgvector only) recall@10 of the filtered vector search (HNSW, iterative scan) against the exact
//                 search (sequential scan) for the same queries and filter; and unfiltered
import 'reflect-metadata';
import pg from 'pg';
import { AppModule } from '../src/app.module.js';
import { createApp } from '../src/bootstrap.js';
import { loadConfig } from '../src/platform/config/config.js';
import { loadLocalEnv } from '../src/platform/config/local-env.js';
import { withDatabase } from '../src/platform/database/database-url.js';
import { dropDatabasesOfEndedRuns } from '../src/platform/database/ended-runs.js';
import { migrate, projectRoot } from '../src/platform/database/migrator.js';
import { OutboxRelay } from '../src/platform/queue/outbox-relay.service.js';
import { featureHashEmbedding, startEmbeddingsDouble } from '../test/support/doubles/embeddings-double.js';

const root = projectRoot();
loadLocalEnv(root);
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_knowledge_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const INGEST_DOCS = Number(process.env.BENCH_INGEST_DOCS ?? 100);
const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 100_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
const DIMS = 256;
const MODEL = 'double-hash-256';
const log = (s: string) => process.stderr.write(`[bench:knowledge] ${s}\n`);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (n: number) => Math.round(n * 100) / 100;

// a deterministic vocabulary and word stream (xorshift), Zipf-like: a few words are common, most are rare
let seed = 2463534242;
const rand = () => ((seed ^= seed << 13), (seed ^= seed >>> 17), (seed ^= seed << 5), (seed >>> 0) / 4294967296);
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'pe', 'da', 'gu', 'zo', 'fi', 'be', 'ha', 'xu'];
const VOCAB = Array.from({ length: 5000 }, () => Array.from({ length: 2 + Math.floor(rand() * 3) }, () => SYLLABLES[Math.floor(rand() * 16)]).join(''));
const word = () => VOCAB[Math.floor(VOCAB.length * rand() ** 2.5)];
const words = (n: number) => Array.from({ length: n }, word).join(' ');

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await dropDatabasesOfEndedRuns(admin, ['omnizen_bench_knowledge_']);
  await admin.query(`CREATE DATABASE "${dbName}"`);
  if (process.env.BENCH_STORAGE === 'array') await admin.query(`ALTER DATABASE "${dbName}" SET omnizen.knowledge_embedding_storage = 'array'`);
  await admin.end();
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  const embeddings = await startEmbeddingsDouble();
  const db = new pg.Pool({ connectionString: ownerUrl, max: 4 });
  let app: Awaited<ReturnType<typeof createApp>> | undefined;
  try {
    log(`migrating ${dbName}`);
    await migrate(ownerUrl, { apiPassword: API_PASSWORD, log: () => undefined });
    const [{ storage, version }] = (await db.query(`SELECT ai.embedding_storage() AS storage, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS version`)).rows;
    const config = loadConfig({
      ...process.env, NODE_ENV: 'development', DATABASE_URL: ownerUrl, API_DATABASE_URL: apiUrl, REDIS_URL: undefined, JOBS_RELAY_INTERVAL_MS: '0',
      MIGRATE_ON_START: 'false', LOG_LEVEL: 'silent', AI_BASE_URL: embeddings.url,
      AI_API_KEY: embeddings.apiKey, AI_EMBEDDING_MODEL: MODEL, AI_EMBEDDING_DIMENSIONS: String(DIMS), AUTH_LOGIN_MAX_FAILURES: '1000',
    });
    app = await createApp(AppModule.forRoot(config));
    await app.listen(0, '127.0.0.1');
    const base = await app.getUrl();
    const call = async (method: string, path: string, body?: unknown, token?: string) => {
      const res = await fetch(`${base}${path}`, {
        method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = res.status === 204 ? undefined : await res.json();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json as any;
    };
    await call('POST', '/v1/auth/register', { email: 'bench@example.test', password: 'correct horse battery', name: 'Bench' });
    const logIn = async () => (await call('POST', '/v1/auth/login', { email: 'bench@example.test', password: 'correct horse battery' })).accessToken as string;
    let token = await logIn();
    const { id: orgId } = await call('POST', '/v1/orgs', { name: 'Bench' }, token);
    await db.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, NULL, 'omnizen', 'enterprise', 'active', $1, now(), now())`, [orgId]);
    const collections: string[] = [];
    for (let i = 0; i < 10; i++) collections.push((await call('POST', `/v1/orgs/${orgId}/knowledge/collections`, { name: `Collection ${i}` }, token)).id);

    // ---------------------------------------------------------------- ingestion
    // warm-up, unmeasured: the tokenizer's tables load and the pools fill on the first ingestion
    await call('POST', `/v1/orgs/${orgId}/knowledge/documents`, { collectionId: collections[0], title: 'Warm-up', text: words(500) }, token);
    await app.get(OutboxRelay).drain();
    const [{ n: warmupChunks }] = (await db.query(`SELECT count(*)::int AS n FROM ai.knowledge_chunks`)).rows;
    log(`ingestion: ${INGEST_DOCS} notes through the API`);
    for (let i = 0; i < INGEST_DOCS; i++) {
      await call('POST', `/v1/orgs/${orgId}/knowledge/documents`, { collectionId: collections[i % 10], title: `Note ${i}`, text: words(2000) }, token);
    }
    const started = performance.now();
    await app.get(OutboxRelay).drain();
    const ingestSeconds = (performance.now() - started) / 1000;
    const [{ n: allChunks, failed }] = (await db.query(`SELECT (SELECT count(*) FROM ai.knowledge_chunks)::int AS n,
      (SELECT count(*) FROM ai.knowledge_documents WHERE status <> 'ready')::int AS failed`)).rows;
    const ingestedChunks = allChunks - warmupChunks;
    log(`ingested ${ingestedChunks} chunks in ${ingestSeconds.toFixed(1)} s (${failed} documents not ready)`);

    // ---------------------------------------------------------------- fill to CHUNKS
    const indexes = (await db.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'ai' AND indexname LIKE 'knowledge_chunks_embedding_%'`)).rows;
    for (const ix of indexes) await db.query(`DROP INDEX ai."${ix.indexname}"`);
    const perDoc = 100;
    const toFill = Math.max(0, CHUNKS - allChunks);
    log(`filling ${toFill} chunks set-based`);
    const fillStarted = performance.now();
    const cast = storage === 'vector' ? 'vector' : 'real[]';
    const lit = (v: number[]) => (storage === 'vector' ? `[${v.map((x) => x.toFixed(5)).join(',')}]` : `{${v.map((x) => x.toFixed(5)).join(',')}}`);
    for (let d = 0; d * perDoc < toFill; d++) {
      const collectionId = collections[d % 10];
      const [{ id: documentId }] = (await db.query(`INSERT INTO ai.knowledge_documents (org_id, collection_id, title, source, latest_version_no, indexed_version_no, status)
        VALUES ($1, $2, $3, 'note', 1, 1, 'ready') RETURNING id`, [orgId, collectionId, `Filled ${d}`])).rows;
      const n = Math.min(perDoc, toFill - d * perDoc);
      const texts = Array.from({ length: n }, () => words(60));
      await db.query(`INSERT INTO ai.knowledge_chunks (org_id, collection_id, document_id, version_no, chunk_no, content, token_count, document_date, embedding_model, embedding_dimensions, embedding)
        SELECT $1, $2, $3, 1, c.no, c.content, 120, now(), $4, $5, c.emb::${cast} FROM unnest($6::int[], $7::text[], $8::text[]) AS c(no, content, emb)`,
      [orgId, collectionId, documentId, MODEL, DIMS, texts.map((_, i) => i), texts, texts.map((t) => lit(featureHashEmbedding(t, DIMS)))]);
      if (d % 100 === 0) log(`  ${Math.min(toFill, (d + 1) * perDoc)} / ${toFill}`);
    }
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    const indexStarted = performance.now();
    await db.query(`SET maintenance_work_mem = '512MB'`);
    for (const ix of indexes) {
      log(`building ${ix.indexname}`);
      await db.query(ix.indexdef);
    }
    const indexSeconds = (performance.now() - indexStarted) / 1000;
    await db.query('VACUUM ANALYZE ai.knowledge_chunks');
    const [{ total }] = (await db.query(`SELECT count(*)::int AS total FROM ai.knowledge_chunks WHERE org_id = $1`, [orgId])).rows;

    // ---------------------------------------------------------------- search
    const queries = Array.from({ length: QUERIES }, () => words(3));
    const timeSearches = async (filter: Record<string, unknown>) => {
      token = await logIn(); // the fill outlasts an access token
      for (const q of queries.slice(0, 10)) await call('POST', `/v1/orgs/${orgId}/knowledge/search`, { query: q, k: 10, ...filter }, token); // warm-up
      const times: number[] = [];
      let empty = 0;
      for (const [i, q] of queries.entries()) {
        if (i % 20 === 19) token = await logIn(); // slow searches can outlast an access token (15 min); not timed
        const t0 = performance.now();
        const r = await call('POST', `/v1/orgs/${orgId}/knowledge/search`, { query: q, k: 10, ...filter }, token);
        times.push(performance.now() - t0);
        if (r.items.length < 10) empty++;
      }
      times.sort((a, b) => a - b);
      return { queries: times.length, p50_ms: ms(pct(times, 50)), p99_ms: ms(pct(times, 99)), results_short_of_10: empty };
    };
    log(`search: ${QUERIES} queries, top 10`);
    const search = await timeSearches({});
    log(`search filtered to one collection`);
    const searchFiltered = await timeSearches({ collectionIds: [collections[3]] });

    // ---------------------------------------------------------------- recall of the filtered vector search
    let recall: Record<string, unknown> | null = null;
    if (storage === 'vector') {
      log('recall@10: HNSW (iterative scan) against exact');
      const c = await db.connect();
      const top = async (q: number[], collection: string | null, exact: boolean) => {
        await c.query('BEGIN');
        await c.query(exact ? `SET LOCAL enable_indexscan = off` : `SET LOCAL hnsw.iterative_scan = relaxed_order`);
        await c.query(`SET LOCAL hnsw.ef_search = 100`);
        const r = await c.query(`WITH v AS MATERIALIZED (SELECT id, (embedding::vector(${DIMS})) <=> $1::vector(${DIMS}) AS d FROM ai.knowledge_chunks
            WHERE org_id = $2 AND embedding_dimensions = ${DIMS} AND embedding_model = $3 AND ($4::uuid IS NULL OR collection_id = $4)
            ORDER BY (embedding::vector(${DIMS})) <=> $1::vector(${DIMS}) LIMIT 10) SELECT id FROM v ORDER BY d`,
        [`[${q.join(',')}]`, orgId, MODEL, collection]);
        await c.query('COMMIT');
        return r.rows.map((x) => String(x.id));
      };
      const measure = async (collection: string | null) => {
        let hit = 0;
        let all = 0;
        let short = 0;
        for (const q of queries.slice(0, 100)) {
          const e = featureHashEmbedding(q, DIMS);
          const [approx, exact] = [await top(e, collection, false), await top(e, collection, true)];
          if (approx.length < 10) short++;
          const truth = new Set(exact);
          hit += approx.filter((id) => truth.has(id)).length;
          all += exact.length;
        }
        return { recall_at_10: Math.round((hit / all) * 1000) / 1000, queries: 100, results_short_of_10: short };
      };
      recall = { ef_search: 100, filtered_one_collection_10pct: await measure(collections[3]), unfiltered: await measure(null) };
      c.release();
    }

    const [load] = (await import('node:os')).loadavg();
    process.stdout.write(`${JSON.stringify({
      storage, pgvector: version ?? null, dimensions: DIMS, machine_load_1m: Math.round(load * 100) / 100,
      ingestion: { documents: INGEST_DOCS, chunks: ingestedChunks, seconds: Math.round(ingestSeconds * 10) / 10, chunks_per_second: Math.round(ingestedChunks / ingestSeconds), chunk_tokens: 400, overlap_tokens: 60 },
      fill: { chunks_in_org: total, load_seconds: Math.round(fillSeconds), hnsw_build_seconds: Math.round(indexSeconds) },
      search_top10_hybrid: search, search_top10_hybrid_filtered_one_collection: searchFiltered, recall,
    }, null, 2)}\n`);
  } finally {
    await app?.close();
    await db.end();
    await embeddings.close();
    const a = new pg.Client({ connectionString: server });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await a.end();
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
