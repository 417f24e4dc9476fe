import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';

/**
 * The most characters (UTF-16 code units) one call of the encoder is handed. js-tiktoken's byte-pair merge is
 * quadratic in the length of one pre-tokenized piece (a run of letters without spaces is one piece: 4,000 letters
 * took a second, 100,000 would take minutes), so a longer piece is cut into pieces of this length: the work is
 * linear in the text, and the count of such a piece may be off by about a token per cut. Words, numbers and
 * punctuation are far shorter, so their tokens are exact.
 */
export const MAX_ENCODE_CHARS = 32;

const WHITESPACE_END = /\s$/u;

/**
 * A tiktoken encoding whose work is bounded: the text is split with the encoding's own pre-tokenizer regex and
 * handed to the encoder in runs of whole pieces of at most MAX_ENCODE_CHARS characters. A run is cut only after
 * a piece ending in a non-space character, where the pre-tokenizer's lookahead (`\s+(?!\S)`) sees nothing of
 * what follows, so the tokens are those of encoding the whole text unless a piece is longer than the bound.
 * Special-token strings (`<|endoftext|>`) are ordinary text here, as a provider counts message text.
 */
export class BoundedTokenizer {
  private readonly encoder: Tiktoken;
  private readonly pattern: string;

  constructor(ranks: TiktokenBPE) {
    this.encoder = new Tiktoken(ranks);
    this.pattern = ranks.pat_str;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    const push = (from: number, to: number) => {
      if (to > from) for (const t of this.encoder.encode(text.slice(from, to), [], [])) out.push(t);
    };
    let start = 0; // of the run not yet encoded
    let safeEnd = 0; // the end of its last piece that ends in a non-space character (0: none)
    for (const m of text.matchAll(new RegExp(this.pattern, 'gu'))) {
      const from = m.index;
      const to = from + m[0].length;
      if (to - from > MAX_ENCODE_CHARS) {
        push(start, from);
        for (let at = from; at < to;) {
          let end = Math.min(at + MAX_ENCODE_CHARS, to);
          if (end < to && isHighSurrogate(text.charCodeAt(end - 1))) end--; // never split a surrogate pair
          push(at, end);
          at = end;
        }
        start = safeEnd = to;
        continue;
      }
      if (to - start > MAX_ENCODE_CHARS) {
        if (safeEnd > start) {
          push(start, safeEnd);
          start = safeEnd;
        }
        if (to - start > MAX_ENCODE_CHARS) {
          // no exact cut within the bound (a run of pieces ending in white space): cut before this piece
          push(start, from);
          start = from;
        }
      }
      if (!WHITESPACE_END.test(m[0])) safeEnd = to;
    }
    push(start, text.length);
    return out;
  }

  decode(tokens: number[]): string {
    return this.encoder.decode(tokens);
  }
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
