/**
 * The benchmarks measure the runtime the project requires (package.json `engines`: Node 24 or later). On Node 20 an
 * AsyncLocalStorage once entered makes every later `await` of the process about 2.6× as slow (its promise hooks), so
 * tracing's figures there say nothing about production: a session measured on Node 20 by mistake (/usr/bin/node
 * first on PATH) found "costs" that do not exist on 24 (bench/README.md). Refuse instead of measuring the wrong thing.
 */
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
if (NODE_MAJOR < 24) {
  throw new Error(`the benchmarks need Node 24 or later (package.json engines), this is ${process.version}: put Node 24 first on PATH`);
}

/**
 * Node flags the benchmarks start the app with: the ones `npm run start:prod` and the Docker image use
 * (package.json, Dockerfile). A larger young generation lets a request's short-lived objects die
 * there instead of being promoted while tens of requests wait on PostgreSQL: ~10% less CPU per
 * posted entry (bench/README.md).
 */
export const APP_NODE_FLAGS = ['--max-semi-space-size=64'];

/**
 * The app's environment in the benchmarks that measure throughput: the request limiter off (a plan allows 600
 * requests a minute on starter, which a benchmark passes in a second). `npm run bench` measures the limiter itself,
 * on against off. RATE_LIMITS_ENABLED set by the caller wins.
 */
export function benchAppEnv(): NodeJS.ProcessEnv {
  return { ...process.env, RATE_LIMITS_ENABLED: process.env.RATE_LIMITS_ENABLED ?? 'false' };
}
