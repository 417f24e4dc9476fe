import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import 'reflect-metadata';
import { MAX_FIELD_PROBLEMS, validationPipe } from '../../src/platform/http/validation.js';
import { BatchJournalEntriesDto, CreateJournalEntryDto } from '../../src/modules/ledger/ledger.dto.js';
import { AnalyticsBatchDto } from '../../src/modules/analytics/analytics.dto.js';

// The validation pipe's walk over an input (before class-transformer) refuses `__proto__` keys at any depth, and Nest's
// ValidationPipe strips `constructor` and `prototype` keys in place before class-transformer sees them. The pipe skips
// Nest's second walk for an input its own walk found plain (JSON as parsed, nothing to strip, no array gap): these tests
// hold the guarantees on both sides of that shortcut, deep in arrays of objects.

const UUID_A = '6f1c1a52-3a4e-4c1e-9f7e-2b1a0c3d4e5f';
const UUID_B = '0b7d2c4e-1f3a-4b5c-8d6e-7f8091a2b3c4';
const lineJson = (side: 'debit' | 'credit', extra = '') => `{"accountId":"${side === 'debit' ? UUID_A : UUID_B}","${side}":"10.00"${extra}}`;
const entryJson = (lines = `${lineJson('debit')},${lineJson('credit')}`, extra = '') => `{"date":"2026-01-15","memo":"m"${extra},"lines":[${lines}]}`;

type Refusal = { code: string; message: string; details: { field: string; problems: string[] }[] };
const pipe = validationPipe();
const refusal = (value: unknown, metatype: new () => object): Promise<Refusal | undefined> =>
  pipe.transform(value, { type: 'body', metatype }).then(() => undefined, (err: { getResponse(): Refusal }) => err.getResponse());
const polluted = () => ({} as Record<string, unknown>).polluted;

describe('validation pipe: prototype keys at every depth', () => {
  it('refuses __proto__ (an own key, as JSON.parse makes it) at depth 3 in an array element of a DTO, naming it, changing no prototype', async () => {
    const body = JSON.parse(`{"entries":[${entryJson()},${entryJson(`${lineJson('debit')},${lineJson('credit', ',"__proto__":{"polluted":1}')}`)}]}`);
    expect(await refusal(body, BatchJournalEntriesDto)).toEqual({
      code: 'validation_failed', message: 'entries[1].lines[1].__proto__ is not accepted: no key may be named __proto__',
      details: [{ field: 'entries[1].lines[1].__proto__', problems: ['entries[1].lines[1].__proto__ is not accepted: no key may be named __proto__'] }],
    });
    expect(Object.getPrototypeOf(body.entries[1].lines[1])).toBe(Object.prototype);
    expect(polluted()).toBeUndefined();
  });

  it('refuses __proto__ in free-form JSON inside arrays of objects, at every place, naming each', async () => {
    const body = JSON.parse('{"events":[{"name":"e","properties":{"a":[{"b":[1,{"__proto__":{"polluted":1}}]}],"c":{"__proto__":null}}}]}');
    expect((await refusal(body, AnalyticsBatchDto))?.details).toEqual([
      { field: 'events[0].properties.a[0].b[1].__proto__', problems: ['events[0].properties.a[0].b[1].__proto__ is not accepted: no key may be named __proto__'] },
      { field: 'events[0].properties.c.__proto__', problems: ['events[0].properties.c.__proto__ is not accepted: no key may be named __proto__'] },
    ]);
    expect(polluted()).toBeUndefined();
  });

  it('refuses constructor.prototype on a nested DTO in an array as an unknown property, keeps it in free-form JSON, changes no prototype', async () => {
    const body = JSON.parse(`{"entries":[${entryJson(`${lineJson('debit')},${lineJson('credit', ',"constructor":{"prototype":{"polluted":1}}')}`)}]}`);
    expect(await refusal(body, BatchJournalEntriesDto)).toEqual({
      code: 'validation_failed', message: 'property constructor should not exist',
      details: [{ field: 'entries[0].lines[1].constructor', problems: ['property constructor should not exist'] }],
    });
    const free = JSON.parse('{"events":[{"name":"e","properties":{"list":[{"x":[{"constructor":{"prototype":{"polluted":1}}}]}]}}]}');
    const dto = await pipe.transform(free, { type: 'body', metatype: AnalyticsBatchDto }) as AnalyticsBatchDto;
    expect(JSON.stringify(dto)).toBe('{"events":[{"name":"e","properties":{"list":[{"x":[{"constructor":{"prototype":{"polluted":1}}}]}]}}]}');
    const kept = (dto.events[0] as { properties: any }).properties.list[0].x[0];
    expect(Object.getPrototypeOf(kept)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(kept, 'constructor')?.value).toEqual({ prototype: { polluted: 1 } });
    expect(polluted()).toBeUndefined();
  });

  it('strips constructor and prototype keys from the input in place before class-transformer, at every depth', async () => {
    // class-transformer would take an own `constructor` for the class to build, and copy `prototype` onto the DTO
    const body = JSON.parse(`{"entries":[${entryJson(`${lineJson('debit', ',"prototype":{"polluted":1}')},${lineJson('credit')}`, ',"constructor":"x"')}]}`);
    const line = body.entries[0].lines[0];
    await refusal(body, BatchJournalEntriesDto);
    expect(Object.hasOwn(line, 'prototype')).toBe(false);
    expect(Object.hasOwn(body.entries[0], 'constructor')).toBe(false);
  });

  it('closes an array gap before validating, as Nest does, when the walk found one', async () => {
    const lines = [, JSON.parse(lineJson('debit')), , JSON.parse(lineJson('credit'))]; // eslint-disable-line no-sparse-arrays
    const dto = await pipe.transform({ ...JSON.parse(entryJson()), lines }, { type: 'body', metatype: CreateJournalEntryDto }) as CreateJournalEntryDto;
    expect(dto.lines.map((l) => l.accountId)).toEqual([UUID_A, UUID_B]);
    expect(lines.length).toBe(2);
  });
  it('names every problem by its own path: field names kept per path prefix stay right across siblings and depths', async () => {
    const line = (memo: string) => ({ accountId: UUID_A, debit: '10.00', memo });
    const body = { entries: [
      { date: '2026-01-15', memo: 'a\u0000', lines: [line('x'), line('y\u0000')] },
      { date: '2026-01-15', memo: 'ok', lines: [line('z\u0000'), line('w')] },
    ] };
    const res = await refusal(body, BatchJournalEntriesDto);
    expect(res?.details.map((d) => d.field)).toEqual(['entries[0].memo', 'entries[0].lines[1].memo', 'entries[1].lines[0].memo']);
    expect(res?.details[2].problems).toEqual(['entries[1].lines[0].memo must not contain a NUL character (\\u0000)']);
  });

  it('the app sets no class-validator container (the pipe keeps each rule\'s validator instance from its first use)', () => {
    const hits = readdirSync('src', { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && readFileSync(`src/${f}`, 'utf8').includes('useContainer('));
    expect(hits).toEqual([]);
  });
  it('names at most MAX_FIELD_PROBLEMS fields and says how many more (a body of many bad values answered a response ~95x its size)', async () => {
    const line = (memo: string) => ({ accountId: UUID_A, debit: '10.00', memo });
    const body = { entries: Array.from({ length: 60 }, () => ({ date: '2026-01-15', memo: 'm\u0000', lines: [line('x\u0000'), line('y\u0000')] })) };
    const res = await refusal(body, BatchJournalEntriesDto);
    expect(res?.details).toHaveLength(MAX_FIELD_PROBLEMS);
    expect(res?.details[0].field).toBe('entries[0].memo');
    expect(res?.message).toMatch(/; and 80 more field\(s\) with problems$/);
  });
});
