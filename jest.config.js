// Jest runs in native ESM mode (NestJS 12 ships ES modules only); @swc/jest compiles TypeScript with decorator metadata.
import { readFileSync } from 'node:fs';

const swc = JSON.parse(readFileSync(new URL('./.swcrc', import.meta.url), 'utf8'));

export default {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/test', '<rootDir>/supabase/tests'],
  testMatch: ['**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['@swc/jest', { ...swc, swcrc: false }],
    // an ES-module-only dependency that a CommonJS package require()s (@fastify/static, for the /docs UI):
    // Node ≥ 20.19 loads it natively, Jest's module loader on Node 20 does not, so it is compiled to CommonJS
    '/node_modules/content-disposition/.+\\.js$': ['@swc/jest', { swcrc: false, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(.*/)?content-disposition/)'],
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 60000,
  // api-coverage: which operations the tests answered, printed after a full run (README, "How the tests work");
  // summary last: its line closes the output
  reporters: ['default', '<rootDir>/test/support/api-coverage-reporter.mjs', '<rootDir>/test/support/summary-reporter.mjs'],
  maxWorkers: 2,
  // A worker leaves its event loop within a millisecond of Jest's "end" (its 'exit' event fires, no handle open), then
  // takes a while more to be gone, growing with its heap: 0.85-1.2 s at ~0.8 GB resident (7 files a worker), 5.0-5.2 s
  // at ~3.9 GB (a full run, ~50 files a worker; measured). Past Jest's default 500 ms it force-killed them and printed
  // "A worker process has failed to exit gracefully" at the end of every full run. No leak: the process's own teardown.
  workerGracefulExitTimeout: 20000,
  // A worker keeps what every test file it ran loaded (native ESM modules in vm contexts are not collected), ~60-75 MB
  // a file: at ~75 files a worker (a full run of 150 files) one ran past V8's heap limit and crashed ("Jest worker ran
  // out of memory", 2026-12-05). Jest starts a fresh worker after a file that leaves it above this. Every garbage
  // collection marks what is kept: the collector's share of a worker's CPU grew from 10 % (1 file) to 25-45 % (10-12
  // files, ~0.8 GB), so a worker is replaced early: 12 app-booting files in one worker took 52-55 s of CPU at 512MB
  // against 64-72 s at 1.5GB (a fresh worker costs ~2-3 s of CPU once; measured 2026-12-05).
  workerIdleMemoryLimit: '512MB',
  // TEST_ORDER=random: files shuffled with a printed seed (test/support/random-sequencer.mjs)
  testSequencer: '<rootDir>/test/support/random-sequencer.mjs',
};
