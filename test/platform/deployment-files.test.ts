import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../src/platform/database/migrator.js';

/** What the deployment files promise, checked against the source (no Docker engine needed). */
describe('deployment files', () => {
  const root = projectRoot();
  const read = (file: string) => readFileSync(join(root, file), 'utf8');

  it('.env.example lists every variable config.ts reads (README: "every variable the API reads is listed")', () => {
    const config = read('src/platform/config/config.ts');
    // env.NAME, env['NAME'] and the readers' (env, 'NAME', ...) calls: int, str, url, bool, list...
    const variables = new Set([
      ...[...config.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]),
      ...[...config.matchAll(/\benv\[\s*'([A-Z][A-Z0-9_]+)'\s*\]/g)].map((m) => m[1]),
      ...[...config.matchAll(/\(\s*env\s*,\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]),
    ]);
    expect(variables.size).toBeGreaterThan(100);
    // set, or shown commented out with its default
    const listed = new Set([...read('.env.example').matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]));
    expect([...variables].filter((name) => !listed.has(name)).sort()).toEqual([]);
  });

  it('.env.example shows the defaults config.ts applies', () => {
    const example = read('.env.example');
    const shown = (name: string) => new RegExp(`^#?\\s*${name}=(.*)$`, 'm').exec(example)?.[1];
    expect(shown('AI_TIMEOUT_MS')).toBe('60000');
    expect(shown('AI_MAX_RETRIES')).toBe('2');
    expect(shown('AI_RETRY_BASE_MS')).toBe('500');
    expect(shown('AI_RETRY_MAX_MS')).toBe('30000');
  });

  it('the image keeps optional packages (the native argon2 binding is one) and checks the binding loads', () => {
    const dockerfile = read('Dockerfile');
    const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n').filter((l) => !l.trimStart().startsWith('#'));
    expect(instructions.filter((l) => /--omit[= ]optional|--no-optional/.test(l))).toEqual([]);
    const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'));
    expect(runtime).toMatch(/node -e '[^']*import\("@node-rs\/argon2"\)[^']*hash\(/);
  });

  it('the runtime user owns the data exports\' directory; compose keeps it on a volume', () => {
    const runtime = read('Dockerfile').slice(read('Dockerfile').indexOf('AS runtime'));
    const chown = runtime.search(/mkdir -p \/app\/\.data\/exports && chown -R node:node \/app\/\.data/);
    expect(chown).toBeGreaterThan(-1);
    expect(chown).toBeLessThan(runtime.indexOf('USER node'));
    expect(read('docker-compose.yml')).toMatch(/^\s+- exports:\/app\/\.data\/exports$/m);
    expect(read('docker-compose.yml')).toMatch(/^volumes:\n(?:\s+\w+:\n)*\s+exports:$/m);
  });
});
