/**
 * An address's local part (`bob` of bob@example.com) and the rest up to the @: what names the person. A server's
 * reply quotes the recipient (`550 5.1.1 <bob@example.com>: Recipient address rejected`).
 */
const ADDRESS = /[^\s<>()[\]"',;:@]+@((?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|\[[^\]\s]+\])/g;

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
