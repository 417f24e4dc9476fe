/**
 * Node flags the benchmarks start the app with: the ones `npm run start:prod` and the Docker image use
 * (package.json, Dockerfile). A larger young generation lets a request's short-lived objects die
 * there instead of being promoted while tens of requests wait on PostgreSQL: ~10% less CPU per
 * posted entry (bench/README.md).
 */
export const APP_NODE_FLAGS = ['--max-semi-space-size=64'];
