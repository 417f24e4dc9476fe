import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import type { TestApp } from '../support/app.js';
import { OutboxRelay } from '../../src/platform/queue/outbox-relay.service.js';

/** Runs the outbox in-process until nothing is due (jobs that enqueue jobs included). */
export async function settle(t: TestApp): Promise<void> {
  const relay = t.app.get(OutboxRelay);
  for (let i = 0; i < 20; i++) if ((await relay.drain()) === 0) return;
  throw new Error('the outbox did not settle');
}

/** Every line written through Nest's Logger while `work` runs, serialized (for "no token in any log line"). */
export function captureLogs(): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  const spies = (['log', 'warn', 'error', 'debug', 'verbose', 'fatal'] as const).map((level) =>
    jest.spyOn(Logger.prototype, level).mockImplementation(function (this: Logger, ...args: unknown[]) {
      lines.push(JSON.stringify(args));
    }));
  return { lines, restore: () => spies.forEach((s) => s.mockRestore()) };
}

/** The token of the first link in a mail's text whose URL contains `path`. */
export function linkToken(text: string, path: string): { url: string; token: string } {
  const match = new RegExp(`(https?://\\S*${path.replace(/[/?]/g, (c) => `\\${c}`)}\\S*)`).exec(text);
  if (!match) throw new Error(`no ${path} link in:\n${text}`);
  const url = new URL(match[1]);
  return { url: match[1], token: url.searchParams.get('token') ?? '' };
}
