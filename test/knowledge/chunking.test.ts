import { afterEach, describe, expect, it } from '@jest/globals';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100kBase from 'js-tiktoken/ranks/cl100k_base';
import { MAX_ENCODE_CHARS } from '../../src/platform/ai/bounded-tokenizer.js';
import { chunkByTokens } from '../../src/modules/knowledge/chunking.js';
import { NORMAL_TEXT, spyOnEncoder, sum, type EncoderSpy } from '../agents/encoder-spy.js';

/**
 * Chunking of uploads and notes (up to 1 MB of text) does bounded work: the encoder is never handed more than
 * MAX_ENCODE_CHARS characters at once (its byte-pair merge is quadratic in a piece's length), and normal text
 * is chunked as encoding it whole would.
 */
describe('chunking by tokens', () => {
  let spy: EncoderSpy | undefined;
  afterEach(() => {
    spy?.restore();
    spy = undefined;
  });

  it('chunks text with a 100,000-letter run without handing the encoder more than the bound at once', () => {
    spy = spyOnEncoder(MAX_ENCODE_CHARS);
    const text = `Invoice scan follows: ${'a'.repeat(100_000)} end of scan.`;
    const chunks = chunkByTokens(text, 64, 8);
    expect(Math.max(...spy.sizes)).toBeLessThanOrEqual(MAX_ENCODE_CHARS);
    expect(sum(spy.sizes)).toBe(text.length);
    expect(chunks[0].content.startsWith('Invoice scan follows: aaaa')).toBe(true);
    expect(chunks.at(-1)!.content.endsWith('aaaa end of scan.')).toBe(true);
    // windows of 64 tokens every 56 over the run's 12,500 tokens (8 letters a token)
    expect(chunks.slice(0, -1).every((c) => c.tokenCount === 64 && /^[A-Za-z :]+$/.test(c.content))).toBe(true);
    const tokens = (chunks.length - 1) * 56 + chunks.at(-1)!.tokenCount;
    expect(tokens).toBeGreaterThan(12_500);
    expect(tokens).toBeLessThan(12_500 + 20); // and the few words around it
  });

  it('chunks normal text exactly as encoding it whole does', () => {
    const whole = new Tiktoken(cl100kBase);
    const text = Array.from({ length: 6 }, (_, i) => `Section ${i + 1}.\n${NORMAL_TEXT}`).join('\n\n');
    const tokens = whole.encode(text.replace(/\s+/g, ' ').trim());
    const expected = [];
    for (let start = 0; start < tokens.length; start += 100 - 20) {
      const window = tokens.slice(start, start + 100);
      expected.push({ content: whole.decode(window).replace(/\uFFFD/g, '').trim(), tokenCount: window.length });
      if (start + 100 >= tokens.length) break;
    }
    expect(expected.length).toBeGreaterThan(3);
    expect(chunkByTokens(text, 100, 20)).toEqual(expected.filter((c) => c.content));
  });
});
