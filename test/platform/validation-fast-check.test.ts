import { describe, expect, it } from '@jest/globals';
import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidatorOptions } from 'class-validator';
import { passesFastCheck, validationPipe } from '../../src/platform/http/validation.js';
import { BatchJournalEntriesDto, CreateJournalEntryDto } from '../../src/modules/ledger/ledger.dto.js';

// The validation pipe lets a body that FastValidityCheck finds valid skip class-validator. It must never let through
// what class-validator refuses: every body below, a valid one and each of its single-field mutations, is checked
// against class-validator itself; and the pipe still answers class-validator's errors for the invalid ones.

// as the pipe passes them (Nest's ValidationPipe sets forbidUnknownValues: false)
const OPTIONS: ValidatorOptions = { forbidUnknownValues: false, whitelist: true, forbidNonWhitelisted: true, validationError: { target: false } };
const UUID_A = '6f1c1a52-3a4e-4c1e-9f7e-2b1a0c3d4e5f';
const UUID_B = '0b7d2c4e-1f3a-4b5c-8d6e-7f8091a2b3c4';
const VALUES: unknown[] = [
  undefined, null, '', 'x', 'manual', 'invoice', 'customer', 'nope', 0, 1, -1, 1.5, true, false, {}, [], [1], ['x'], '2026-01-15', '2026-13-45', '15.01.2026',
  '100.00', '1.005', '-1.00', '1e3', ' 1.00', 'USD', 'usd', 'EURO', '0.92', '0', UUID_A, 'not-a-uuid', UUID_A.toUpperCase(), 'a'.repeat(201), 'a'.repeat(1001),
  '\u0000', { accountId: UUID_A }, [{ accountId: UUID_A, debit: '1' }],
];

const line = (side: 'debit' | 'credit', extra: Record<string, unknown> = {}) => ({ accountId: side === 'debit' ? UUID_A : UUID_B, [side]: '10.00', ...extra });
const entry = (extra: Record<string, unknown> = {}) => ({
  date: '2026-01-15', memo: 'rent', source: 'manual', sourceRef: 'INV-1', idempotencyKey: 'k-1',
  lines: [line('debit', { currency: 'USD', rate: '0.92', description: 'd', workspaceId: UUID_B, counterpartyType: 'vendor', counterpartyId: 'V-1', taxCodeId: UUID_A }), line('credit')],
  ...extra,
});

/** The body with the value at `path` replaced (undefined: removed), and one with an unknown key added there. */
function mutations(body: unknown, path: (string | number)[] = []): unknown[] {
  const out: unknown[] = [];
  const at = (value: unknown, p: (string | number)[], replace: (v: unknown) => unknown): unknown => {
    if (!p.length) return replace(value);
    const [head, ...rest] = p;
    const copy: any = Array.isArray(value) ? [...value] : { ...(value as object) };
    copy[head] = at(copy[head], rest, replace);
    if (copy[head] === undefined && !Array.isArray(copy)) delete copy[head];
    return copy;
  };
  const visit = (value: unknown, p: (string | number)[]) => {
    if (p.length) for (const v of VALUES) out.push(at(body, p, () => v));
    if (value && typeof value === 'object') {
      if (!Array.isArray(value)) out.push(at(body, p, (v) => ({ ...(v as object), unknownField: 1 })));
      else out.push(at(body, p, (v) => [...(v as unknown[]), (v as unknown[])[0]]), at(body, p, (v) => (v as unknown[]).slice(1)), at(body, p, () => []));
      for (const [k, v] of Object.entries(value)) visit(v, [...p, Array.isArray(value) ? Number(k) : k]);
    }
  };
  visit(body, path);
  return out;
}

async function agrees(metatype: new () => object, body: unknown): Promise<'passed' | 'left to class-validator' | 'wrong'> {
  const instance = plainToInstance(metatype, body) as object;
  if (instance === null || typeof instance !== 'object' || !passesFastCheck(instance, OPTIONS)) return 'left to class-validator';
  const errors = await validate(instance, OPTIONS);
  return errors.length === 0 ? 'passed' : 'wrong';
}

describe('FastValidityCheck (validation pipe)', () => {
  it('finds valid bodies valid', () => {
    expect(passesFastCheck(plainToInstance(CreateJournalEntryDto, entry()), OPTIONS)).toBe(true);
    expect(passesFastCheck(plainToInstance(BatchJournalEntriesDto, { entries: [entry(), entry({ memo: undefined, lines: [line('debit'), line('credit')] })] }), OPTIONS)).toBe(true);
  });

  it('never passes a journal entry or a batch that class-validator refuses', async () => {
    const bodies: [new () => object, unknown][] = [
      ...mutations(entry()).map((b) => [CreateJournalEntryDto, b] as [new () => object, unknown]),
      ...mutations({ entries: [entry(), entry()] }).map((b) => [BatchJournalEntriesDto, b] as [new () => object, unknown]),
    ];
    expect(bodies.length).toBeGreaterThan(2000);
    const wrong: unknown[] = [];
    let passed = 0;
    for (const [metatype, body] of bodies) {
      const r = await agrees(metatype, body);
      if (r === 'wrong') wrong.push(body);
      if (r === 'passed') passed++;
    }
    expect(wrong).toEqual([]);
    expect(passed).toBeGreaterThan(50); // the mutations that keep the body valid (an optional field removed, another valid value)
  });

  it('leaves the errors of an invalid body to class-validator: the pipe names the field', async () => {
    const pipe = validationPipe();
    const body = { entries: [entry(), entry({ lines: [line('debit', { accountId: 'not-a-uuid' }), line('credit')] })] };
    const err = await pipe.transform(body, { type: 'body', metatype: BatchJournalEntriesDto }).catch((e) => e);
    expect(err.getResponse()).toMatchObject({ code: 'validation_failed', details: [{ field: 'entries.1.lines.0.accountId', problems: [expect.stringMatching(/accountId must be a UUID/)] }] });
    const ok = await pipe.transform({ entries: [entry()] }, { type: 'body', metatype: BatchJournalEntriesDto });
    expect(ok).toBeInstanceOf(BatchJournalEntriesDto);
    expect((ok as BatchJournalEntriesDto).entries[0]).toBeInstanceOf(CreateJournalEntryDto);
  });
});
