import { Logger } from '@nestjs/common';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../../generated/prisma/client.js';

/**
 * A Prisma client over a pg pool we own. The pool gets an 'error' listener: an idle connection
 * cut by the server (restart, failover, terminated backend) is logged and replaced, instead of
 * crashing the process with an unhandled 'error' event.
 */
export function prismaOverPool(connectionString: string, max: number, name: string): { client: PrismaClient; close: () => Promise<void> } {
  const logger = new Logger(name);
  const pool = new pg.Pool({ connectionString, max });
  pool.on('error', (err) => logger.warn(`idle database connection lost: ${err.message}`));
  const client = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    client,
    async close() {
      await client.$disconnect();
      if (!pool.ended) await pool.end();
    },
  };
}
