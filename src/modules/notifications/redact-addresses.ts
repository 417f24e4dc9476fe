/**
 * An address's local part (`bob` of bob@example.com) and the rest up to the @: what names the person. A server's
 * reply quotes the recipient (`550 5.1.1 <bob@example.com>: Recipient address rejected`). Any run of characters that
 * are no space, bracket, double quote or separator around an @ (`o'brien@`; an internationalized domain,
 * `exämple.de`; one without a dot, `localhost`), or a quoted local part (`"bob smith"@example.com`, which may hold
 * spaces and an @): a log line is better redacted once too often than not at all. The domain is an address literal
 * (`[192.0.2.1]`) or such a run.
 */
const ADDRESS = /(?:"(?:[^"\\\r\n]|\\.)*"|[^\s<>()[\]{}",;:@]+)@(\[[^\]\s]+\]|[^\s<>()[\]{}"',;:@]+)/g;

/**
 * `text` with every e-mail address in it reduced to its domain (`***@example.com`): for the log lines that quote an
 * SMTP server's reply (the delivery row keeps the reply whole, in its organization's data).
 */
export function redactAddresses(text: string): string {
  return text.replace(ADDRESS, (_address, domain: string) => `***@${domain}`);
}

/** The domain of an address, the most of it a log line names. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1);
}
