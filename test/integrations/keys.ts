import { randomBytes } from 'node:crypto';

/** Random 32-byte keys in SECRETS_KEYS form, per test file. */
export function testKeys(...ids: string[]): { env: string; keys: Record<string, Buffer> } {
  const keys = Object.fromEntries(ids.map((id) => [id, randomBytes(32)]));
  return { env: ids.map((id) => `${id}:${keys[id].toString('base64')}`).join(','), keys };
}
