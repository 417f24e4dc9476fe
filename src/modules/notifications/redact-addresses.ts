/**
 * What names a person in an address, as a log line may quote it (a server's reply quotes the recipient: `550 5.1.1
 * <bob@example.com>: Recipient address rejected`): the local part (`bob`), a display name (`Bob Smith <bob@...>`,
 * `"Bob Smith" <bob@...>`) and a comment (`bob@example.com (Bob Smith)`). A log line is better redacted once too often
 * than not at all. The pieces, each scanned once from where the last ended (no pattern here backtracks more than a
 * bounded stretch, so the time is linear in the text's length: a caller need not cap it):
 *
 * - LOCAL: a run of characters that are no space, bracket, double quote, separator or @ (`o'brien`; `jörg.müller`), a
 *   backslash with the character after it (`bob\ smith`) and comments (`bob(home)`); a `%` unless it starts `%40`, an
 *   @ percent-encoded (`?e=bob%40example.com`, of which the redaction keeps the URL's `?e=`).
 * - QUOTED: a quoted string, a local part (`"bob smith"@example.com`, which may hold spaces and an @) before an @, a
 *   display name before `<address>`, else text whose addresses are redacted.
 * - NAME: up to four words before `<address>`, the first capitalized (`Bob Smith`, `Jörg Müller`, `Anne de Vries`): the
 *   SMTP words before one (`550 5.1.1 <...`, `RCPT TO:<...`, `to <...`) start with a digit, end with a colon or are in
 *   lower case. A display name in lower case is left; capitalized words of a reply before one (`User Unknown <...`) go.
 * - DOMAIN: an address literal of up to 64 characters (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) or a run like LOCAL's (an
 *   internationalized domain, `exämple.de`; one without a dot, `localhost`): kept.
 * - COMMENT: a parenthesized comment right after an address (RFC 5322's old form of a display name).
 */
const WORD = String.raw`[\p{L}\p{M}'’.\-]`;
const NAME = String.raw`\p{Lu}${WORD}*(?:[ \t]+\p{L}${WORD}*){0,3}`;
const BEFORE_ADDRESS = String.raw`(?=<[^<>@\r\n]{0,256}(?:@|%40))`;
const LOCAL = String.raw`(?:[^\s<>()[\]{}",;:@\\%]|%(?!40)|\\[^\r\n]|\([^()@\r\n]{0,64}\))+`;
const QUOTED = String.raw`"(?:[^"\\\r\n]|\\[^\r\n])*"`;
const DOMAIN = String.raw`\[[^\]\s]{1,64}\]|[^\s<>()[\]{}"',;:@]+`;
const COMMENT = String.raw`[ \t]*\([^()@\r\n]{0,64}\)`;
const ADDRESS = new RegExp([
  String.raw`(?<name>${NAME})(?<nameGap>[ \t]*)${BEFORE_ADDRESS}`,
  String.raw`(?<quoted>${QUOTED})(?:(?<quotedAt>@|%40)(?<quotedDomain>${DOMAIN})?(?<quotedComment>${COMMENT})?|(?<quotedGap>[ \t]*)${BEFORE_ADDRESS})?`,
  String.raw`(?<local>${LOCAL})(?:(?<at>@|%40)(?<domain>${DOMAIN})?(?<comment>${COMMENT})?)?`,
].join('|'), 'gu');

interface Pieces {
  name?: string; nameGap?: string;
  quoted?: string; quotedAt?: string; quotedDomain?: string; quotedComment?: string; quotedGap?: string;
  local?: string; at?: string; domain?: string; comment?: string;
}

/** A comment's gap kept, its text not. */
const redactComment = (comment: string | undefined): string => (comment === undefined ? '' : `${comment.slice(0, comment.indexOf('('))}(***)`);

/** Of a percent-encoded address in a URL, the URL's part before the local part (`?e=` of `?e=bob%40example.com`). */
const urlPrefix = (local: string): string => local.slice(0, Math.max(...['=', '&', '?', '/', '#'].map((c) => local.lastIndexOf(c))) + 1);

function redactPiece(match: string, p: Pieces): string {
  if (p.name !== undefined) return `***${p.nameGap}`;
  if (p.quoted !== undefined) {
    if (p.quotedAt !== undefined) return `***${p.quotedAt}${p.quotedDomain ?? ''}${redactComment(p.quotedComment)}`;
    if (p.quotedGap !== undefined) return `"***"${p.quotedGap}`;
    return `"${redactAddresses(p.quoted.slice(1, -1))}"`;
  }
  if (p.at === undefined) return match;
  const kept = p.at === '%40' ? urlPrefix(p.local!) : '';
  return `${kept}***${p.at}${p.domain ?? ''}${redactComment(p.comment)}`;
}

/**
 * `text` with every e-mail address in it reduced to its domain (`***@example.com`), its display name and comment to
 * `***`: for the log lines that quote an SMTP server's reply (the delivery row keeps the reply whole, in its
 * organization's data). Linear in the text's length, however long.
 */
export function redactAddresses(text: string): string {
  return text.replace(ADDRESS, (match: string, ...args: unknown[]) => redactPiece(match, args[args.length - 1] as Pieces));
}

/** The domain of an address, the most of it a log line names. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}
