import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Reads the project's `.env` (if there is one) into process.env; variables already set in the environment win.
 * Every entry point (npm start, db:migrate, secrets:rotate, the benchmarks) calls it first, before anything reads
 * the environment. Returns whether a file was read.
 */
export function loadLocalEnv(root: string): boolean {
  const file = join(root, '.env');
  if (!existsSync(file)) return false;
  process.loadEnvFile(file);
  return true;
}
