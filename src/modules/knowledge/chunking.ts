import cl100kBase from 'js-tiktoken/ranks/cl100k_base';
import { BoundedTokenizer } from '../../platform/ai/bounded-tokenizer.js';

let encoding: BoundedTokenizer | undefined;
/**
 * cl100k_base: the tokenizer of OpenAI's embedding models, so chunk sizes are what the model counts. Bounded: an
 * upload's text may hold a long run without spaces.
 */
const tokenizer = () => (encoding ??= new BoundedTokenizer(cl100kBase));

/** Tokens of `text` as the embedding models count them (what an embedding call of it reserves on the AI budget). */
export function countEmbeddingTokens(text: string): number {
  return text ? tokenizer().encode(text).length : 0;
}

export interface TextChunk {
  content: string;
  tokenCount: number;
}

/**
 * Splits text into windows of `size` tokens, each starting `size - overlap` tokens after the previous one, so a
 * sentence cut at a boundary is whole in one of the two chunks.
 */
export function chunkByTokens(text: string, size: number, overlap: number): TextChunk[] {
  const enc = tokenizer();
  const tokens = enc.encode(text.replace(/\s+/g, ' ').trim());
  if (tokens.length === 0) return [];
  const step = Math.max(1, size - overlap);
  const chunks: TextChunk[] = [];
  for (let start = 0; start < tokens.length; start += step) {
    const window = tokens.slice(start, start + size);
    // a window may cut a multi-byte character: the decoder's replacement character is dropped
    const content = enc.decode(window).replace(/\uFFFD/g, '').trim();
    if (content) chunks.push({ content, tokenCount: window.length });
    if (start + size >= tokens.length) break;
  }
  return chunks;
}
