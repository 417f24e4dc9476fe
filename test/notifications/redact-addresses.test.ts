import { describe, expect, it } from '@jest/globals';
import { redactAddresses } from '../../src/modules/notifications/redact-addresses.js';

/**
 * The log lines quoting an SMTP server's reply kept the local part of addresses the pattern did not know: an
 * internationalized domain, a domain without a dot, a quoted local part. Any run of characters around an @ that are no
 * space, bracket, double quote or separator is redacted now, and a quoted local part with it; the domain is kept.
 */
describe('redactAddresses', () => {
  it('redacts the addresses the old pattern let through', () => {
    expect(redactAddresses('550 <bob@exämple.de>: unknown')).toBe('550 <***@exämple.de>: unknown');
    expect(redactAddresses('550 5.1.1 <bob@localhost> rejected')).toBe('550 5.1.1 <***@localhost> rejected');
    expect(redactAddresses('553 "bob smith"@example.com: no such user')).toBe('553 ***@example.com: no such user');
    expect(redactAddresses('to <"bob@home"@example.com>, jörg.müller@例え.jp; o\'brien@example.ie'))
      .toBe('to <***@example.com>, ***@例え.jp; ***@example.ie');
  });

  it('still redacts the usual forms, keeps address literals and leaves text without an address alone', () => {
    expect(redactAddresses('550 5.1.1 <bob.smith+tag@mail.example.co.uk>: unknown; also alice@x.test, and [ok] 250 2.0.0'))
      .toBe('550 5.1.1 <***@mail.example.co.uk>: unknown; also ***@x.test, and [ok] 250 2.0.0');
    expect(redactAddresses('RCPT TO:<carol@[192.0.2.1]> refused')).toBe('RCPT TO:<***@[192.0.2.1]> refused');
    expect(redactAddresses('421 4.7.0 try again "later" (rate limited)')).toBe('421 4.7.0 try again "later" (rate limited)');
  });
});
