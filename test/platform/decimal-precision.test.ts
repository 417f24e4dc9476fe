import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Decimal } from '../../src/platform/decimal.js';
import { baseOf, D } from '../../src/modules/ledger/money.js';

/**
 * Every Decimal of the app is made by src/platform/decimal.ts's class, whose precision holds the products the app
 * computes exactly: decimal.js's own rounds them to 20 digits first, and USD 110,000,000.21 at 1.0857142857
 * (119,428,571.654999999997) came out 119,428,571.66 where PostgreSQL's round() gives 119,428,571.65.
 */
describe('decimal precision', () => {
  it('values an amount at a rate as PostgreSQL does: no double rounding', () => {
    expect(baseOf('110000000.21', '1.0857142857', 2).toFixed(2)).toBe('119428571.65');
    // the largest amount (numeric(20, 4)) times the largest rate (numeric(24, 10)) is exact
    expect(D('9999999999999999.9999').times('99999999999999.9999999999').toFixed())
      .toBe('999999999999999999989999000000.00000000000001');
    expect(new Decimal('0.1').constructor).toBe(D(1).constructor);
  });

  it('no source file makes a Decimal with decimal.js\'s own class (only types are imported from it)', () => {
    const root = join(process.cwd(), 'src');
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) { if (e.name !== 'generated') walk(p); } else if (e.name.endsWith('.ts')) files.push(p);
      }
    };
    walk(root);
    const offenders = files.filter((f) => relative(root, f) !== join('platform', 'decimal.ts'))
      .filter((f) => /^import\s+(?!type\b)[^;]*from\s+'decimal\.js'/m.test(readFileSync(f, 'utf8')))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });
});
