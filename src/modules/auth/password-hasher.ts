import { Inject, Injectable } from '@nestjs/common';
import { hash, parseOptions, verify } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';

/** argon2id in @node-rs/argon2's numbering (its Algorithm enum is a const enum, invisible to isolated modules). */
const ARGON2ID = 2;

export interface PasswordCheck {
  ok: boolean;
  /** the hash is bcrypt (accounts from before argon2id) or argon2id with other costs: store a new one */
  needsRehash: boolean;
}

/**
 * Password hashes: argon2id computed natively on libuv's thread pool, so hashing never blocks the
 * event loop (bcryptjs did, and four sign-ups moved /health from 1 ms to 200 ms). Hashes from
 * before (bcrypt, $2a$/$2b$) still verify and are replaced at the next successful login.
 * Unknown e-mails are checked against a dummy hash made with the same algorithm and costs, so
 * "no such account" takes as long as "wrong password".
 */
@Injectable()
export class PasswordHasher {
  private readonly options: { memoryCost: number; timeCost: number; parallelism: number };
  private dummy?: Promise<string>;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.options = { memoryCost: config.auth.passwordHash.memoryKib, timeCost: config.auth.passwordHash.timeCost, parallelism: 1 };
  }

  hash(password: string): Promise<string> {
    return hash(password, { ...this.options, algorithm: ARGON2ID as never });
  }

  async verify(passwordHash: string, password: string): Promise<PasswordCheck> {
    if (passwordHash.startsWith('$2')) {
      // bcryptjs's async compare yields between rounds; it runs once per account before the upgrade
      return { ok: await bcrypt.compare(password, passwordHash), needsRehash: true };
    }
    const ok = await verify(passwordHash, password);
    return { ok, needsRehash: ok && !this.hasCurrentCosts(passwordHash) };
  }

  /** Spends what a real check costs, for an e-mail without a password. Always false. */
  async verifyDummy(password: string): Promise<false> {
    await verify(await this.dummyHash(), password);
    return false;
  }

  /** The hash unknown e-mails are checked against: same algorithm and costs as real hashes, made once. */
  dummyHash(): Promise<string> {
    this.dummy ??= this.hash('not a password anyone has: the account does not exist');
    return this.dummy;
  }

  private hasCurrentCosts(passwordHash: string): boolean {
    const p = parseOptions(passwordHash);
    return (p.algorithm as number) === ARGON2ID && p.memoryCost === this.options.memoryCost
      && p.timeCost === this.options.timeCost && p.parallelism === this.options.parallelism;
  }
}
