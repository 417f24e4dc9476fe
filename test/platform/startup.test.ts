import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import swc from '@swc/core';
import { projectRoot } from '../../src/platform/database/migrator.js';

// The real entry point (src/main.ts) with one bad variable each: one line on stderr naming it, exit code 1.
// No stack trace, no half-started server.

const root = projectRoot();
/** src/ compiled once, as the tests compile it (.swcrc): five processes then load JavaScript instead of each compiling it. */
let built: string;
const env = {
  PATH: process.env.PATH,
  NODE_ENV: 'development',
  DATABASE_URL: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
  MIGRATE_ON_START: 'false',
  LOG_LEVEL: 'silent',
  JOBS_RELAY_INTERVAL_MS: '0',
};

function start(extra: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [join(built, 'src', 'main.js')], { cwd: root, env: { ...env, ...extra }, timeout: 120_000 },
      (err, _stdout, stderr) => done({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }));
  });
}

/** Every .ts file of src/ as ES modules under a temporary folder, which resolves packages from the project's node_modules. */
async function build(): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'omnizen-startup-'));
  const options = { ...JSON.parse(readFileSync(join(root, '.swcrc'), 'utf8')), swcrc: false, sourceMaps: false };
  const files = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  await Promise.all(files.map(async (file) => {
    const source = join(root, 'src', file);
    const { code } = await swc.transformFile(source, { ...options, filename: source });
    const target = join(out, 'src', file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, code);
  }));
  writeFileSync(join(out, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
  return out;
}

describe('a bad configuration value stops the API with one line naming it', () => {
  beforeAll(async () => {
    built = await build();
  });
  afterAll(() => {
    if (built) rmSync(built, { recursive: true, force: true });
  });

  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: '99999' }, /^configuration error: PORT must be an integer from 1 to 65535, got "99999"$/],
    [{ LOG_LEVEL: 'verbose' }, /^configuration error: LOG_LEVEL must be one of .*, got "verbose"$/],
    [{ STRIPE_API_PROTOCOL: 'ftp' }, /^configuration error: STRIPE_API_PROTOCOL must be one of http, https, got "ftp"$/],
    [{ HOST: 'no-such-host.invalid', PORT: '39999' }, /^configuration error: HOST "no-such-host.invalid" does not resolve/],
    [{ NODE_ENV: 'production', SUPABASE_JWT_SECRET: 'dev-only-supabase-jwt-secret-change-me-0000', API_DATABASE_PASSWORD: 'x'.repeat(20) },
      /^configuration error: SUPABASE_JWT_SECRET is the development value of .env.example/],
  ];

  it('for PORT, LOG_LEVEL, STRIPE_API_PROTOCOL, an unresolvable HOST and a development secret in production', async () => {
    const results = await Promise.all(cases.map(([extra]) => start(extra)));
    results.forEach(({ code, stderr }, i) => {
      const lines = stderr.split('\n').filter((l) => l.trim() && !l.includes('ExperimentalWarning') && !l.includes('--trace-warnings'));
      expect({ variable: Object.keys(cases[i][0])[0], code, lines }).toEqual({ variable: Object.keys(cases[i][0])[0], code: 1, lines: [expect.stringMatching(cases[i][1])] });
    });
    // five API processes start at once on 2 cores, each loading the whole application
  }, 150_000);
});
