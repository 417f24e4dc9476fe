import { jest } from '@jest/globals';
import { BoundedTokenizer } from '../../src/platform/ai/bounded-tokenizer.js';

export interface EncoderSpy {
  /** the length of every piece handed to the byte-pair merge, in order */
  sizes: number[];
  restore(): void;
}

/**
 * Watches the tokenizer's byte-pair merge (BoundedTokenizer.encodePiece, shared by every encoding) and refuses a
 * piece longer than `bound` characters: the merge is quadratic in a piece's length, so a long run handed over whole
 * would take long before any assertion; refused, it fails the test at once.
 */
export function spyOnEncoder(bound: number): EncoderSpy {
  const sizes: number[] = [];
  const encodePiece = BoundedTokenizer.prototype.encodePiece;
  const spy = jest.spyOn(BoundedTokenizer.prototype, 'encodePiece').mockImplementation(function (this: BoundedTokenizer, piece: string, out: number[]) {
    sizes.push(piece.length);
    if (piece.length > bound) throw new Error(`the merge was handed ${piece.length} characters at once (bound ${bound})`);
    return encodePiece.call(this, piece, out);
  });
  return { sizes, restore: () => spy.mockRestore() };
}

export const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

/** Text as people and programs write it: prose, code, numbers, JSON, URLs, other scripts, emoji, line ends of both kinds. */
export const NORMAL_TEXT = [
  'Please review the Q3 numbers: revenue was $1,234,567.89 (up 12.5% y/y), and we\'ve booked 3 new contracts.',
  'Don\'t forget the VAT return — it\'s due on 2026-10-31!\r\n',
  'function total(lines) {\n    return lines.reduce((s, l) => s + Number(l.amount), 0);\n}\n\n',
  '{"accountId": "6f1c1a52-3a4e-4c1e-9f7e-2b1a0c3d4e5f", "debit": "100.00", "memo": "rent"}',
  'See https://docs.example.com/ledger/journal-entries?status=posted#reversals   for details.',
  '\t\tIndented with tabs,      spaced out,\n\n\n   and trailing   ',
  '会計年度の締めは三月です。請求書を確認してください。Ελληνικά κείμενα και русский текст.',
  'Café naïve façade — Zürich, Straße, ÉCOLE 🙂👍🏽 done.',
].join('\n');
