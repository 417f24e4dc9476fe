import { afterEach, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100kBase from 'js-tiktoken/ranks/cl100k_base';
import o200kBase from 'js-tiktoken/ranks/o200k_base';
import { BoundedTokenizer, MAX_ENCODE_CHARS } from '../../src/platform/ai/bounded-tokenizer.js';
import type { ChatMessage, ToolDefinition } from '../../src/platform/ai/llm-provider.js';
import { countChatInputTokens, countTextTokens } from '../../src/platform/ai/token-count.js';
import { NORMAL_TEXT, spyOnEncoder, sum, type EncoderSpy } from './encoder-spy.js';

/**
 * The token counter of runs (a run's input is up to 100,000 characters, counted on the request's thread) does
 * bounded, small work: the byte-pair merge is never handed more than MAX_ENCODE_CHARS characters at once, because it
 * is quadratic in a piece's length, and 100,000 characters of any script cost a fraction of a second of CPU.
 * Normal text counts as js-tiktoken's encoding of it whole does.
 */
describe('token counting', () => {
  let spy: EncoderSpy | undefined;
  afterEach(() => {
    spy?.restore();
    spy = undefined;
  });

  it('counts a 100,000-letter run without handing the encoder more than the bound at once', () => {
    spy = spyOnEncoder(MAX_ENCODE_CHARS);
    const run = 'a'.repeat(100_000);
    // 8 letters a token, as a run short enough to encode whole has ('a'.repeat(1000): 125 tokens)
    expect(countTextTokens(run)).toBe(12_500);
    expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
    expect(sum(spy.sizes)).toBe(100_000); // every letter handed over once
    spy.sizes.length = 0;
    const messages: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: `Summarize ${run} please` }];
    expect(countChatInputTokens(messages)).toBe(3 + 4 + countTextTokens('Be brief.') + 4 + countTextTokens(`Summarize ${run} please`));
    expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
  });

  it('counts 100,000 characters of CJK text, a run\'s most, handing the merge each character once in pieces of the bound', () => {
    // the merge is quadratic in a piece, so bounded pieces keep the work linear in the text (the CPU time it takes is
    // measured, not asserted: timings belong in bench/, see the note of 2026-12-05)
    const text = '会计账簿记录了公司的所有交易和余额，每月结账时需要核对。'.repeat(4_000).slice(0, 100_000);
    spy = spyOnEncoder(MAX_ENCODE_CHARS);
    const n = countTextTokens(text);
    expect(n).toBeGreaterThan(50_000); // about a token and a half per two characters
    expect(sum(spy.sizes)).toBe(100_000);
    expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
  });

  it('bounds a long run of any script: the encoder gets pieces of the bound, surrogate pairs kept whole', () => {
    const tokenizer = new BoundedTokenizer(o200kBase);
    spy = spyOnEncoder(MAX_ENCODE_CHARS);
    for (const run of ['漢'.repeat(2_000), '🙂'.repeat(2_000), '!'.repeat(10_000), ' '.repeat(10_000) + 'x']) {
      spy.sizes.length = 0;
      const tokens = tokenizer.encode(run);
      expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
      expect(tokenizer.decode(tokens)).toBe(run);
    }
  });

  it('counts normal text exactly as encoding it whole does', () => {
    const whole = new Tiktoken(o200kBase);
    const count = (s: string) => whole.encode(s).length;
    expect(countTextTokens(NORMAL_TEXT)).toBe(count(NORMAL_TEXT));
    for (const line of NORMAL_TEXT.split('\n')) expect(countTextTokens(line)).toBe(count(line));
    const tools: ToolDefinition[] = [{ name: 'get_trial_balance', description: 'The trial balance at a date', parameters: { type: 'object', properties: { asOf: { type: 'string' } } } }];
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: NORMAL_TEXT },
      { role: 'assistant', content: null, toolCalls: [{ id: 'c1', name: 'get_trial_balance', arguments: '{"asOf":"2026-06-30"}' }] },
      { role: 'tool', toolCallId: 'c1', content: '{"rows":[{"account":"1100","balance":"100.00"}]}' },
    ];
    expect(countChatInputTokens(messages, tools)).toBe(3
      + 4 + count('You are a helpful assistant.')
      + 4 + count(NORMAL_TEXT)
      + 4 + 0 + count('get_trial_balance') + count('{"asOf":"2026-06-30"}') + 4
      + 4 + count('{"rows":[{"account":"1100","balance":"100.00"}]}')
      + count(JSON.stringify(tools[0])) + 4);
  });

  it('gives the tokens of the whole text for any text whose pre-tokenized pieces are within the bound (both encodings)', () => {
    // pieces that mix at the seams: runs of white space before digits and punctuation, contractions, marks, line ends
    const words = ['hello', 'World', 'UPPER', 'CamelCase', ' ', '  ', '    ', '\t', '\n', '\r\n', '\n\n', ' \n ', '123', '45678', ' 9', "'s", "don't",
      'É', 'ß', '\u0301', '漢字', 'かな', '🙂', '!', '?!', '...', '//', '(', ')', '{}', '"', '-', '_', '!\n', 'https://x.io/a?b=1', '<|endoftext|>'];
    const text = fc.array(fc.constantFrom(...words), { minLength: 1, maxLength: 120 }).map((ws) => ws.join(''));
    for (const ranks of [o200kBase, cl100kBase]) {
      const whole = new Tiktoken(ranks);
      const bounded = new BoundedTokenizer(ranks);
      const pieces = new RegExp(ranks.pat_str, 'gu');
      fc.assert(fc.property(text, (s) => {
        fc.pre([...s.matchAll(pieces)].every((m) => m[0].length <= MAX_ENCODE_CHARS));
        // special-token strings are text, as a provider counts a message's text
        expect(bounded.encode(s)).toEqual(whole.encode(s, [], []));
      }), { numRuns: 500 });
    }
  });
});
