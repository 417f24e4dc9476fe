import type { TiktokenBPE } from 'js-tiktoken/lite';

/**
 * The most characters (UTF-16 code units) one byte-pair merge is handed. The merge is quadratic in the length of one
 * pre-tokenized piece (a run of letters without spaces is one piece: with js-tiktoken's merge 4,000 letters took a
 * second, 100,000 would take minutes), so a longer piece is cut into pieces of this length: the work is linear in
 * the text, and the count of such a piece may be off by about a token per cut. Words, numbers and punctuation are
 * far shorter, so their tokens are exact.
 */
export const MAX_ENCODE_CHARS = 32;

const ASCII = /^[\x00-\x7f]*$/;

/**
 * A tiktoken encoding (the ranks js-tiktoken ships) whose work is small and bounded: the text is split with the
 * encoding's own pre-tokenizer regex, and each piece (cut to MAX_ENCODE_CHARS) is byte-pair merged as tiktoken
 * does (the lowest-ranked adjacent pair first, the leftmost of equals), so the tokens are those of encoding the
 * whole text unless a piece is longer than the bound. Its own merge, not js-tiktoken's encode: that one re-runs
 * the pre-tokenizer, builds two regexes and sets per call and keys every rank lookup by joining a byte array,
 * and recomputes every pair's rank after each merge (about 3 s for 100,000 CJK characters, against 0.15 s here).
 * Ranks are keyed by the token's bytes as a latin1 string. Special-token strings (`<|endoftext|>`) are ordinary
 * text here, as a provider counts message text.
 */
export class BoundedTokenizer {
  private readonly ranks = new Map<string, number>();
  private readonly bytesOf: string[] = [];
  private readonly pattern: string;

  constructor(ranks: TiktokenBPE) {
    this.pattern = ranks.pat_str;
    // each line: a prefix, the rank of its first token, then base64 tokens of consecutive ranks (js-tiktoken's format)
    for (const line of ranks.bpe_ranks.split('\n')) {
      if (!line) continue;
      const [, offset, ...tokens] = line.split(' ');
      let rank = Number.parseInt(offset, 10);
      for (const token of tokens) {
        const bytes = Buffer.from(token, 'base64').toString('latin1');
        this.ranks.set(bytes, rank);
        this.bytesOf[rank++] = bytes;
      }
    }
  }

  encode(text: string): number[] {
    const out: number[] = [];
    const pieces = new RegExp(this.pattern, 'gu');
    for (const m of text.matchAll(pieces)) {
      const piece = m[0];
      if (piece.length <= MAX_ENCODE_CHARS) {
        this.encodePiece(piece, out);
        continue;
      }
      for (let at = 0; at < piece.length;) {
        let end = Math.min(at + MAX_ENCODE_CHARS, piece.length);
        if (end < piece.length && isHighSurrogate(piece.charCodeAt(end - 1))) end--; // never split a surrogate pair
        // a cut-off part is pre-tokenized again on its own, as encoding it alone would
        for (const sub of piece.slice(at, end).matchAll(new RegExp(this.pattern, 'gu'))) this.encodePiece(sub[0], out);
        at = end;
      }
    }
    return out;
  }

  decode(tokens: number[]): string {
    return Buffer.from(tokens.map((t) => this.bytesOf[t] ?? '').join(''), 'latin1').toString('utf8');
  }

  /** The tokens of one pre-tokenized piece of at most MAX_ENCODE_CHARS characters, appended to `out`. */
  encodePiece(piece: string, out: number[]): void {
    const bytes = ASCII.test(piece) ? piece : Buffer.from(piece, 'utf8').toString('latin1');
    const whole = this.ranks.get(bytes);
    if (whole !== undefined) {
      out.push(whole);
      return;
    }
    // parts are bytes[starts[i], starts[i + 1]); pair[i]: the rank of parts i and i + 1 merged (Infinity: no such token)
    const starts: number[] = [];
    for (let i = 0; i <= bytes.length; i++) starts.push(i);
    const rankOf = (i: number) => (i + 2 < starts.length ? this.ranks.get(bytes.slice(starts[i], starts[i + 2])) ?? Infinity : Infinity);
    const pair: number[] = [];
    for (let i = 0; i < bytes.length - 1; i++) pair.push(rankOf(i));
    while (pair.length > 0) {
      let at = -1;
      let min = Infinity;
      for (let i = 0; i < pair.length; i++) {
        if (pair[i] < min) {
          min = pair[i];
          at = i;
        }
      }
      if (at < 0) break;
      starts.splice(at + 1, 1);
      pair.splice(at, 1);
      if (at < pair.length) pair[at] = rankOf(at);
      if (at > 0) pair[at - 1] = rankOf(at - 1);
    }
    for (let i = 0; i + 1 < starts.length; i++) out.push(this.ranks.get(bytes.slice(starts[i], starts[i + 1]))!);
  }
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
