// One form of an e-mail address for every comparison and every row the app writes: trimmed, lower-cased and in Unicode
// NFC, so "josé" typed precomposed (é) and decomposed (e + U+0301) is one address: one account, one pending
// invitation, one sign-in. Lower-cased first: NFC after it (a lower-casing may leave a sequence NFC composes).
// Migration 20270211000700 brought the stored addresses to NFC (reporting, never merging, those that would collide).

/** An e-mail address as the app stores and compares it. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase().normalize('NFC');
}

/** The class-transformer form (`@Transform(emailInput)`) of an e-mail field; a non-string passes on to the validators. */
export const emailInput = ({ value }: { value: unknown }): unknown => (typeof value === 'string' ? normalizeEmail(value) : value);
