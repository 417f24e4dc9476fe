import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import type { PrismaClient } from '../../generated/prisma/client.js';
import { prismaOverPool } from './pool.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { Db } from './database.service.js';

/**
 * The privileged paths: the only code that runs outside a tenant transaction. Each runs in a
 * transaction on the owner connection under SET LOCAL ROLE service_role, and each is named here
 * so the list stays short and reviewable. Callers audit what they change.
 */
export const PRIVILEGED_PATHS = {
  /** registration and login: finding a user and password hash before anyone is authenticated */
  'auth.credentials': 'register, password login, token exchange (create or sync a user)',
  /** refresh-token rotation, reuse detection and logout by refresh token */
  'auth.refresh': 'refresh-token rotation and family revocation',
  /** the outbox relay: reads pending jobs of every organization */
  'jobs.relay': 'relay outbox rows to Bull or run them in-process',
  /** scheduled clean-up of expired invitations and refresh tokens */
  'jobs.purge': 'purge expired invitations, sessions and refresh tokens',
  /** Stripe webhooks and the Hub provisioning that follows them */
  'billing.webhook': 'apply Stripe events to hub subscriptions',
  /** scheduled expiry of trials and subscriptions canceled at period end */
  'billing.expiry': 'expire ended trials and canceled subscriptions',
  /** re-sealing integration secrets under the active key */
  'secrets.rotate': 'secrets:rotate command',
  /** a public provider page: the owner's calendar credentials, to subtract busy times from availability */
  'integrations.busy_times': 'read the sealed CalDAV secret of a public provider for its availability',
} as const;
export type PrivilegedPath = keyof typeof PRIVILEGED_PATHS;

@Injectable()
export class PrivilegedDatabase implements OnApplicationShutdown {
  private readonly client: PrismaClient;
  private readonly close: () => Promise<void>;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    ({ client: this.client, close: this.close } = prismaOverPool(config.databaseUrl, 5, 'PrivilegedDatabase'));
  }

  run<T>(path: PrivilegedPath, work: (db: Db) => Promise<T>): Promise<T> {
    return this.client.$transaction(async (db) => {
      await db.$executeRaw`SELECT set_config('role', 'service_role', true), set_config('omnizen.privileged_path', ${path}, true)`;
      return work(db);
    }, { maxWait: 10_000, timeout: 60_000 });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }
}
