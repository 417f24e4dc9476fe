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

  it('redacts a display name, a comment, a commented or escaped local part and a percent-encoded address', () => {
    expect(redactAddresses('550 rejected: Bob Smith <bob@example.com>')).toBe('550 rejected: *** <***@example.com>');
    expect(redactAddresses('From: Jörg Müller <j@example.de>, "Bob Smith" <bob@example.com>')).toBe('From: *** <***@example.de>, "***" <***@example.com>');
    expect(redactAddresses('"bob@example.com" <bob@example.com>')).toBe('"***" <***@example.com>');
    expect(redactAddresses('550 bob@example.com (Bob Smith): unknown')).toBe('550 ***@example.com (***): unknown');
    expect(redactAddresses('550 bob(home)@example.com unknown')).toBe('550 ***@example.com unknown');
    expect(redactAddresses('553 bob\\ smith@example.com: bad')).toBe('553 ***@example.com: bad');
    expect(redactAddresses('GET /unsubscribe?e=bob%40example.com&t=1 550')).toBe('GET /unsubscribe?e=***%40example.com&t=1 550');
    expect(redactAddresses('x "a \\" bob@example.com" y')).toBe('x "a \\" ***@example.com" y');
    // what only looks like one is left: SMTP words before an address, a quoted word, a comment of its own
    expect(redactAddresses('550 5.1.1 to <bob@example.com>: (user unknown) "later"')).toBe('550 5.1.1 to <***@example.com>: (user unknown) "later"');
  });

  it('scans 200,000 characters of each shape the pattern could backtrack over, leaving no local part', () => {
    // before, a run of 100,000 address characters without an @ took 5 s (each start tried to the end: the ten shapes
    // below ran past the test's timeout); callers cap the text at 1,000 characters, the function no longer needs them to.
    // No time is asserted here (timings belong in bench/): the suite's timeout is what a backtracking scan would hit
    const shapes = ['a'.repeat(200_000), 'a@['.repeat(66_000), 'Ab '.repeat(66_000), 'A <'.repeat(66_000), '"a"'.repeat(66_000),
      'a(b'.repeat(66_000), '"\\'.repeat(100_000), 'A' + ' '.repeat(200_000), 'a@b ('.repeat(40_000), '%4'.repeat(100_000)];
    for (const text of shapes) {
      const redacted = redactAddresses(text);
      expect({ shape: text.slice(0, 5), localPartLeft: /[^*]@/.test(redacted) }).toEqual({ shape: text.slice(0, 5), localPartLeft: false });
    }
  });
});
