/** The most characters an entry's memo has (finance.check_entry refuses a longer one: 422 ledger.invalid_entry). */
export const MAX_MEMO_LENGTH = 1000;

/**
 * A memo the API builds around a client's text (a bill's memo, the memo of the entry a reversal reverses): `before`,
 * `text` and `after`, with `text` cut to fit MAX_MEMO_LENGTH and ended with an ellipsis when cut, so that a client's
 * memo near the limit never makes the generated one too long. Counted in characters (code points), as PostgreSQL's
 * length() counts them; a surrogate pair is never split.
 */
export function generatedMemo(before: string, text: string, after = ''): string {
  const whole = [...before, ...text, ...after];
  if (whole.length <= MAX_MEMO_LENGTH) return before + text + after;
  const room = MAX_MEMO_LENGTH - [...before].length - [...after].length - 1;
  // the generated parts alone are too long (never with the API's own prefixes): the whole memo is cut
  if (room < 0) return whole.slice(0, MAX_MEMO_LENGTH - 1).join('') + '…';
  return before + [...text].slice(0, room).join('') + '…' + after;
}
