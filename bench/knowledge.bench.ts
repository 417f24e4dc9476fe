// npm run bench:knowledge — the knowledge base: ingestion throughput and search latency at 100,000 chunks.
// Prints one JSON document; progress goes to stderr.
//
// It creates its own database (omnizen_bench_knowledge_<pid>) on DATABASE_URL's server, migrates it (pgvector where
// the server has the `vector` extension, else real[]; BENCH_STORAGE=array forces real[]), starts the app in this
// process with an OpenAI-compatible embeddings double on 127.0.0.1, and drops the database at the end.
//
// The corpus and its embeddings (a test double's, deterministic): 200 topics of 64 words each plus 200 common
// words (Zipf-like). A chunk is 60 words, 60 % of its document's topic and 40 % common words. The double embeds a
// text as the weighted sum of its words' vectors (a word's vector: 0.2 × its topic's centroid plus a word-specific
// part, both random unit vectors; common words weigh 0.3), scaled to unit length — a bag of word vectors: chunks of
// a topic have cosine ~0.68, of two topics ~0.01, a 3-word query's best chunk ~0.4, with continuous distances. (A
// first version with the centroid at weight 1 made every topic a near-duplicate cluster, cosine 0.97 within it,
// and HNSW's recall@10 on it was 0.75 at 20,000 chunks: an artefact of the corpus, not of the index.) The tests' double (feature hashing of
// character trigrams) is not used here: on 60-word chunks its cosine similarities to a 3-word query take a few
// discrete values (shared trigram counts), the exact top 10 is then one draw among hundreds of tied chunks and
// recall@10 against it is ill-defined (`near_ties_at_10th` below shows how many chunks tie with the 10th).
//
//   ingestion     BENCH_INGEST_DOCS (default 100) notes of 2,000 words through POST /knowledge/documents, then the
//                 outbox drained in-process: chunks per second of the drain (chunking at 400/60 tokens, embedding
//                 through the double over HTTP, storing), from the first job to the last commit
//   fill          the organization is filled to BENCH_CHUNKS (default 100,000) chunks straight through SQL (the
//                 double's embeddings computed here), spread over 10 collections; the HNSW and GIN indexes are
//                 rebuilt after the load (as a bulk load would), then VACUUM ANALYZE
//   search        BENCH_QUERIES (default 200) queries of 3 corpus words through POST /knowledge/search (top 10,
//                 hybrid), one at a time, as the owner: p50/p99 of the response time; again filtered to one
//                 collection (10 % of the chunks). Each query's words are drawn like the chunks' (common words often);
//                 then 50 queries of one of the 10 commonest words (the full-text worst case, bounded by the cap)
//   recall        (pgvector only) recall@10 of the vector ranking as search runs it (the repository's own code:
//                 exact when at most KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS readable chunks match, else HNSW with the
//                 iterative scan and the repository's ef_search; the same 40 candidates re-sorted, the first 10)
//                 against the exact ranking with the same filter, as the API's login under begin_request's claims
//                 (the policies as the API has them): filtered to one collection (10 %), to three (30 %), unfiltered.
//                 BENCH_RECALL_QUERIES (default 100) queries each.
// BENCH_KEEP_DB=name keeps the filled database under that name instead of dropping it (experiments).
// BENCH_ONLY=search skips the ingestion measure (the corpus is still filled).
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
import {
  knowledgeRepository, searchCandidates, HNSW_EF_SEARCH, HNSW_MAX_SCAN_TUPLES, FULL_TEXT_MATCH_CAP, type StorageInfo,
} from '../src/modules/knowledge/knowledge.repository.js';
import type { Db } from '../src/platform/database/database.service.js';
import { startEmbeddingsDouble } from '../test/support/doubles/embeddings-double.js';

const root = projectRoot();
loadLocalEnv(root);
const server = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `omnizen_bench_knowledge_${process.pid}`;
const API_PASSWORD = 'omnizen_api_bench';
const INGEST_DOCS = Number(process.env.BENCH_INGEST_DOCS ?? 100);
const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 100_000);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
const DIMS = 256;
const MODEL = 'double-word-vectors-256';
const ONLY = process.env.BENCH_ONLY;
/** keeps the database at the end under this name (for experiments on the filled corpus); dropped otherwise */
const KEEP = process.env.BENCH_KEEP_DB;
const log = (s: string) => process.stderr.write(`[bench:knowledge] ${s}\n`);
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (n: number) => Math.round(n * 100) / 100;

// a deterministic corpus (xorshift): 200 common words and 200 topics of 24 words
let seed = 2463534242;
const rand = () => ((seed ^= seed << 13), (seed ^= seed >>> 17), (seed ^= seed << 5), (seed >>> 0) / 4294967296);
const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'pe', 'da', 'gu', 'zo', 'fi', 'be', 'ha', 'xu'];
const TOPICS = 200;
const TOPIC_WORDS = 64;
const COMMON = 200;
const vocabulary = new Set<string>();
while (vocabulary.size < COMMON + TOPICS * TOPIC_WORDS) {
  vocabulary.add(Array.from({ length: 3 + Math.floor(rand() * 3) }, () => SYLLABLES[Math.floor(rand() * 16)]).join(''));
}
const VOCAB = [...vocabulary];
const topicWord = (t: number) => VOCAB[COMMON + t * TOPIC_WORDS + Math.floor(TOPIC_WORDS * rand() ** 1.5)];
const commonWord = () => VOCAB[Math.floor(COMMON * rand() ** 2.5)];
const words = (n: number, topic: number) => Array.from({ length: n }, () => (rand() < 0.6 ? topicWord(topic) : commonWord())).join(' ');

// the word vectors of the double's embedding model: topic centroid + word-specific part, both ~unit length
const unit = () => Float64Array.from({ length: DIMS }, () => gauss() / Math.sqrt(DIMS));
const centroids = Array.from({ length: TOPICS }, unit);
const WORD = new Map<string, { v: Float64Array; weight: number }>(VOCAB.map((w, i) => {
  if (i < COMMON) return [w, { v: unit(), weight: 0.3 }];
  const c = centroids[Math.floor((i - COMMON) / TOPIC_WORDS)];
  const own = unit();
  return [w, { v: own.map((x, j) => 0.2 * c[j] + x), weight: 1 }];
}));
function corpusEmbedding(text: string, dims: number): number[] {
  if (dims !== DIMS) throw new Error(`the bench double embeds in ${DIMS} dimensions, ${dims} were asked for`);
  const v = new Float64Array(DIMS);
  for (const w of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    const e = WORD.get(w);
    if (!e) continue; // a word out of the corpus (the API's own texts): no meaning in this model
    for (let j = 0; j < DIMS; j++) v[j] += e.weight * e.v[j];
  }
  const norm = Math.hypot(...v);
  return Array.from(v, (x) => (norm === 0 ? 0 : x / norm));
}

/** A pg client as the repository's Db (raw queries only): the recall measure runs the repository's own SQL. */
const asDb = (c: pg.PoolClient) => ({
  $queryRawUnsafe: async (q: string, ...params: unknown[]) => (await c.query(q, params)).rows,
  $executeRawUnsafe: async (q: string, ...params: unknown[]) => (await c.query(q, params)).rowCount,
}) as unknown as Db;

async function main(): Promise<void> {
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await dropDatabasesOfEndedRuns(admin, ['omnizen_bench_knowledge_']);
  await admin.query(`CREATE DATABASE "${dbName}"`);
  if (process.env.BENCH_STORAGE === 'array') await admin.query(`ALTER DATABASE "${dbName}" SET omnizen.knowledge_embedding_storage = 'array'`);
  await admin.end();
  const ownerUrl = withDatabase(server, dbName);
  const apiUrl = withDatabase(server, dbName, { user: 'omnizen_api', password: API_PASSWORD });
  const embeddings = await startEmbeddingsDouble(undefined, corpusEmbedding);
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
    app = await createApp(AppModule.forRoot(config), config);
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
    // setup only: the e-mail verified, as its mailed link would (a business organization needs it), through the owner connection
    await db.query(`UPDATE core.user_identities SET email_verified_at = now() WHERE user_id = (SELECT id FROM core."User" WHERE email = 'bench@example.test')`);
    const { id: orgId } = await call('POST', '/v1/orgs', { name: 'Bench' }, token);
    await db.query(`INSERT INTO hub."Subscription" (id, "userId", "appId", plan, status, "organizationId", "createdAt", "updatedAt")
      VALUES (gen_random_uuid()::text, NULL, 'omnizen', 'enterprise', 'active', $1, now(), now())`, [orgId]);
    const collections: string[] = [];
    for (let i = 0; i < 10; i++) collections.push((await call('POST', `/v1/orgs/${orgId}/knowledge/collections`, { name: `Collection ${i}` }, token)).id);

    // ---------------------------------------------------------------- ingestion
    let ingestion: Record<string, unknown> | null = null;
    if (ONLY !== 'search') {
      // warm-up, unmeasured: the tokenizer's tables load and the pools fill on the first ingestion
      await call('POST', `/v1/orgs/${orgId}/knowledge/documents`, { collectionId: collections[0], title: 'Warm-up', text: words(250, 0) }, token);
      await app.get(OutboxRelay).drain();
      const [{ n: warmupChunks }] = (await db.query(`SELECT count(*)::int AS n FROM ai.knowledge_chunks`)).rows;
      log(`ingestion: ${INGEST_DOCS} notes through the API`);
      for (let i = 0; i < INGEST_DOCS; i++) {
        await call('POST', `/v1/orgs/${orgId}/knowledge/documents`, { collectionId: collections[i % 10], title: `Note ${i}`, text: words(2000, i % TOPICS) }, token);
      }
      const started = performance.now();
      await app.get(OutboxRelay).drain();
      const ingestSeconds = (performance.now() - started) / 1000;
      const [{ n: allChunks, failed }] = (await db.query(`SELECT (SELECT count(*) FROM ai.knowledge_chunks)::int AS n,
        (SELECT count(*) FROM ai.knowledge_documents WHERE status <> 'ready')::int AS failed`)).rows;
      const ingestedChunks = allChunks - warmupChunks;
      log(`ingested ${ingestedChunks} chunks in ${ingestSeconds.toFixed(1)} s (${failed} documents not ready)`);
      ingestion = { documents: INGEST_DOCS, chunks: ingestedChunks, seconds: Math.round(ingestSeconds * 10) / 10, chunks_per_second: Math.round(ingestedChunks / ingestSeconds), chunk_tokens: 400, overlap_tokens: 60, documents_not_ready: failed };
    }

    // ---------------------------------------------------------------- fill to CHUNKS, straight through SQL
    const indexes = (await db.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'ai'
      AND (indexname LIKE 'knowledge_chunks_embedding_%' OR indexname = 'knowledge_chunks_tsv_idx')`)).rows;
    for (const ix of indexes) await db.query(`DROP INDEX ai."${ix.indexname}"`);
    const [{ n: before }] = (await db.query(`SELECT count(*)::int AS n FROM ai.knowledge_chunks`)).rows;
    const perDoc = 20;
    const toFill = Math.max(0, CHUNKS - before);
    log(`filling ${toFill} chunks through SQL`);
    const fillStarted = performance.now();
    const lit = storage === 'vector' ? (v: number[]) => `[${v.map((x) => x.toFixed(5)).join(',')}]` : (v: number[]) => `{${v.map((x) => x.toFixed(5)).join(',')}}`;
    const BATCH = 2000;
    for (let done = 0; done < toFill; done += BATCH) {
      const n = Math.min(BATCH, toFill - done);
      const docs = Math.ceil(n / perDoc);
      const docTopics = Array.from({ length: docs }, () => Math.floor(rand() * TOPICS));
      const docCollections = Array.from({ length: docs }, (_, i) => collections[(done / perDoc + i) % 10]);
      const ids = (await db.query(`INSERT INTO ai.knowledge_documents (org_id, collection_id, title, source, latest_version_no, indexed_version_no, status)
        SELECT $1, c, 'Filled ' || t, 'note', 1, 1, 'ready' FROM unnest($2::uuid[], $3::int[]) AS x(c, t) RETURNING id, collection_id`,
      [orgId, docCollections, docTopics])).rows;
      const texts = Array.from({ length: n }, (_, i) => words(60, docTopics[Math.floor(i / perDoc)]));
      await db.query(`INSERT INTO ai.knowledge_chunks (org_id, collection_id, document_id, version_no, chunk_no, content, token_count, document_date, embedding_model, embedding_dimensions, embedding)
        SELECT $1, c.col, c.doc, 1, c.no, c.content, 120, now(), $2, $3, c.emb::${storage === 'vector' ? 'vector' : 'real[]'}
        FROM unnest($4::uuid[], $5::uuid[], $6::int[], $7::text[], $8::text[]) AS c(col, doc, no, content, emb)`,
      [orgId, MODEL, DIMS, texts.map((_, i) => ids[Math.floor(i / perDoc)].collection_id), texts.map((_, i) => ids[Math.floor(i / perDoc)].id),
        texts.map((_, i) => i % perDoc), texts, texts.map((t) => lit(corpusEmbedding(t, DIMS)))]);
      if ((done / BATCH) % 10 === 0) log(`  ${done + n} / ${toFill}`);
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

    // ---------------------------------------------------------------- search through the API
    const queries = Array.from({ length: QUERIES }, () => words(3, Math.floor(rand() * TOPICS)));
    // the full-text worst case: one of the 10 commonest words (matches ~a third of the chunks; the cap bounds the ranking)
    const commonQueries = Array.from({ length: Math.min(50, QUERIES) }, (_, i) => VOCAB[i % 10]);
    const timeSearches = async (filter: Record<string, unknown>, list = queries) => {
      token = await logIn(); // the fill outlasts an access token
      for (const q of list.slice(0, 10)) await call('POST', `/v1/orgs/${orgId}/knowledge/search`, { query: q, k: 10, ...filter }, token); // warm-up
      const times: number[] = [];
      let short = 0;
      let withText = 0;
      for (const [i, q] of list.entries()) {
        if (i % 50 === 49) token = await logIn(); // not timed
        const t0 = performance.now();
        const r = await call('POST', `/v1/orgs/${orgId}/knowledge/search`, { query: q, k: 10, ...filter }, token);
        times.push(performance.now() - t0);
        if (r.items.length < 10) short++;
        if (r.items.some((h: { textRank: number | null }) => h.textRank !== null)) withText++;
      }
      times.sort((a, b) => a - b);
      return { queries: times.length, p50_ms: ms(pct(times, 50)), p99_ms: ms(pct(times, 99)), max_ms: ms(times[times.length - 1]), results_short_of_10: short, queries_with_a_full_text_hit: withText };
    };
    // how many chunks the full-text side matches per query (what the cap bounds), as the database counts
    const matches = (await db.query(`SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY n) AS p FROM (
      SELECT (SELECT count(*) FROM ai.knowledge_chunks c WHERE c.org_id = $1 AND c.tsv @@ websearch_to_tsquery('english', q)) AS n
      FROM unnest($2::text[]) AS q) x`, [orgId, queries.slice(0, 50)])).rows[0].p as number[];
    log(`search: ${QUERIES} queries, top 10`);
    const search = await timeSearches({});
    log(`search filtered to one collection`);
    const searchFiltered = await timeSearches({ collectionIds: [collections[3]] });
    log(`search for one common word`);
    const searchCommon = await timeSearches({}, commonQueries);
    const [{ n: commonMatches }] = (await db.query(`SELECT count(*)::int AS n FROM ai.knowledge_chunks WHERE org_id = $1 AND tsv @@ websearch_to_tsquery('english', $2)`, [orgId, VOCAB[0]])).rows;

    // ---------------------------------------------------------------- recall of the vector ranking
    let recall: Record<string, unknown> | null = null;
    if (storage === 'vector') {
      log('recall@10: the vector ranking as search runs it against exact, as the API login under the policies');
      const info: StorageInfo = { storage, iterativeScan: Number((version as string).split('.')[1]) >= 8 || Number((version as string).split('.')[0]) > 0 };
      const [{ id: ownerId }] = (await db.query(`SELECT user_id AS id FROM core.memberships WHERE org_id = $1 LIMIT 1`, [orgId])).rows;
      // as the API runs it: its runtime login, the claims verified by begin_request (the policies' fast path)
      const apiPool = new pg.Pool({ connectionString: apiUrl, max: 1 });
      const c = await apiPool.connect();
      const top = async (q: number[], filter: string[] | null, exact: boolean) => {
        await c.query('BEGIN');
        try {
          await c.query(`SELECT public.begin_request($1, 'authenticated')`, [JSON.stringify({ sub: ownerId, org_id: orgId, role: 'authenticated' })]);
          const t0 = performance.now();
          const r = await knowledgeRepository.vectorTopIds(asDb(c), info, orgId, {
            embedding: q, dimensions: DIMS, model: MODEL, k: 10, candidates: searchCandidates(10), collectionIds: filter ?? undefined,
            exactSearchMaxChunks: config.knowledge.exactSearchMaxChunks,
          }, exact);
          return { ...r, took: performance.now() - t0 };
        } finally {
          await c.query('COMMIT');
        }
      };
      const RECALL_QUERIES = Math.min(Number(process.env.BENCH_RECALL_QUERIES ?? 100), queries.length);
      const measure = async (filter: string[] | null) => {
        let hit = 0;
        let all = 0;
        let short = 0;
        const ties: number[] = [];
        const times: number[] = [];
        const methods: Record<string, number> = {};
        for (const q of queries.slice(0, RECALL_QUERIES)) {
          const e = corpusEmbedding(q, DIMS);
          const approx = await top(e, filter, false);
          const exact = await top(e, filter, true);
          times.push(approx.took);
          methods[approx.method] = (methods[approx.method] ?? 0) + 1;
          if (approx.ids.length < 10) short++;
          const truth = new Set(exact.ids);
          hit += approx.ids.filter((id) => truth.has(id)).length;
          all += exact.ids.length;
        }
        // near-ties: chunks within 1e-4 of the 10th exact distance (a large count makes recall@10 ill-defined)
        for (const q of queries.slice(0, 10)) {
          const e = `[${corpusEmbedding(q, DIMS).join(',')}]`;
          const r = (await db.query(`WITH d AS (SELECT (embedding::vector(${DIMS})) <=> $1::vector(${DIMS}) AS d FROM ai.knowledge_chunks
              WHERE org_id = $2 AND ($3::uuid[] IS NULL OR collection_id = ANY ($3))), tenth AS (SELECT d FROM d ORDER BY d OFFSET 9 LIMIT 1)
            SELECT count(*)::int AS n FROM d, tenth WHERE abs(d.d - tenth.d) < 1e-4`, [e, orgId, filter])).rows[0].n;
          ties.push(r);
        }
        times.sort((a, b) => a - b);
        return {
          recall_at_10: Math.round((hit / all) * 1000) / 1000, queries: RECALL_QUERIES, method: methods, results_short_of_10: short,
          vector_sql_p50_ms: ms(pct(times, 50)), vector_sql_p99_ms: ms(pct(times, 99)), near_ties_at_10th_median: ties.sort((a, b) => a - b)[Math.floor(ties.length / 2)],
        };
      };
      try {
        recall = {
          ef_search: HNSW_EF_SEARCH, iterative_scan: 'relaxed_order', max_scan_tuples: HNSW_MAX_SCAN_TUPLES, exact_up_to_chunks: config.knowledge.exactSearchMaxChunks,
          candidates: searchCandidates(10),
          filtered_one_collection_10pct: await measure([collections[3]]),
          filtered_three_collections_30pct: await measure(collections.slice(0, 3)),
          unfiltered: await measure(null),
        };
      } finally {
        c.release();
        await apiPool.end();
      }
    }

    const load = (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100);
    process.stdout.write(`${JSON.stringify({
      storage, pgvector: version ?? null, dimensions: DIMS, machine_load_1_5_15m: load,
      ingestion,
      fill: { chunks_in_org: total, load_seconds: Math.round(fillSeconds), index_build_seconds: Math.round(indexSeconds) },
      full_text_matches_per_query: { p50: matches[0], p99: matches[1], ranked_at_most: FULL_TEXT_MATCH_CAP },
      search_top10_hybrid: search, search_top10_hybrid_filtered_one_collection: searchFiltered,
      search_top10_one_common_word: { ...searchCommon, full_text_matches_of_the_commonest: commonMatches }, recall,
    }, null, 2)}\n`);
  } finally {
    await app?.close();
    await db.end();
    await embeddings.close();
    const a = new pg.Client({ connectionString: server });
    await a.connect();
    if (KEEP) {
      await a.query(`DROP DATABASE IF EXISTS "${KEEP}" WITH (FORCE)`);
      await a.query(`ALTER DATABASE "${dbName}" RENAME TO "${KEEP}"`);
      log(`kept the database as ${KEEP}`);
    } else {
      await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    }
    await a.end();
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
