// The known organization-level settings and their shapes. App-level settings (scope = an app code)
// are free-form JSON owned by each app, limited in size.
import { isDeepStrictEqual } from 'node:util';
import { CURRENCY } from '../../platform/http/money.js';

export type Checked = { ok: true; value: unknown } | { ok: false; problem: string };
type Check = (value: unknown) => Checked;

export const ORG_SCOPE = 'org';
export const SCOPE_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
export const KEY_PATTERN = /^[a-z][a-z0-9_.]{0,127}$/;
export const APP_VALUE_MAX_BYTES = 16 * 1024;

/** `registry[key]` for a key from a request: only the registry's own entries (`constructor` would find Object). */
const own = <T>(registry: Record<string, T>, key: string): T | undefined => (Object.hasOwn(registry, key) ? registry[key] : undefined);

const ok = (value: unknown): Checked => ({ ok: true, value });
const bad = (problem: string): Checked => ({ ok: false, problem });

const TIME_ZONES = new Set(Intl.supportedValuesOf('timeZone'));
const CURRENCIES = new Set(Intl.supportedValuesOf('currency'));

const locale: Check = (v) => {
  if (typeof v !== 'string' || v.length > 35) return bad('must be a BCP 47 language tag such as "en-US"');
  try {
    // stored in canonical form ("en-us" → "en-US")
    return ok(Intl.getCanonicalLocales(v)[0]);
  } catch {
    return bad(`"${v}" is not a BCP 47 language tag`);
  }
};

const timezone: Check = (v) => {
  if (typeof v !== 'string') return bad('must be an IANA time zone such as "Europe/Berlin"');
  if (TIME_ZONES.has(v) || v === 'UTC') return ok(v);
  // Intl also knows IANA aliases (Asia/Calcutta); fixed offsets are not time zones here
  if (/^[A-Za-z]+(\/[A-Za-z0-9_+-]+)+$/.test(v)) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: v });
      return ok(v);
    } catch { /* falls through */ }
  }
  return bad(`"${String(v)}" is not an IANA time zone`);
};

const currency: Check = (v) =>
  typeof v === 'string' && CURRENCY.test(v) && CURRENCIES.has(v) ? ok(v) : bad('must be an ISO 4217 currency code such as "EUR"');

const month: Check = (v) => (Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 12 ? ok(v) : bad('must be an integer month from 1 to 12'));

const BRANDING_FIELDS: Record<string, Check> = {
  displayName: (v) => (typeof v === 'string' && v.trim().length >= 1 && v.length <= 100 ? ok(v) : bad('displayName must be 1 to 100 characters')),
  primaryColor: (v) => (typeof v === 'string' && /^#[0-9a-fA-F]{6}$/.test(v) ? ok(v.toLowerCase()) : bad('primaryColor must look like #1a2b3c')),
  logoUrl: (v) => {
    if (typeof v !== 'string' || v.length > 2048) return bad('logoUrl must be an https URL');
    try {
      return new URL(v).protocol === 'https:' ? ok(v) : bad('logoUrl must be an https URL');
    } catch {
      return bad('logoUrl must be an https URL');
    }
  },
};

const branding: Check = (v) => {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return bad(`must be an object with ${Object.keys(BRANDING_FIELDS).join(', ')}`);
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [field, value] of Object.entries(v)) {
    const check = own(BRANDING_FIELDS, field);
    if (!check) {
      problems.push(`unknown field ${field} (known: ${Object.keys(BRANDING_FIELDS).join(', ')})`);
      continue;
    }
    const r = check(value);
    if (r.ok) out[field] = r.value;
    else problems.push(r.problem);
  }
  return problems.length ? bad(problems.join('; ')) : ok(out);
};

export const ORG_SETTINGS: Record<string, Check> = {
  locale,
  timezone,
  base_currency: currency,
  fiscal_year_start_month: month,
  branding,
};

/**
 * Organization settings only a plan with the named omnizen feature may change (docs/plans.md: white-label is enterprise
 * and custom). Reading, writing back what is stored, leaving fields out (setsNewValue) and deleting stay open, so a downgraded
 * organization keeps what it stored, may clear it, and saves its other settings with it in the same request.
 * Whatever applies the branding to others (mails, pages, documents) must check white_label when it does and fall back
 * to OmniZen's own branding without it; nothing applies it yet (only GET returns it).
 */
export const PLAN_GATED_ORG_SETTINGS: ReadonlyMap<string, string> = new Map([['branding', 'white_label']]);

/**
 * Whether writing `next` (checked) over `stored` (undefined: nothing stored) sets something the organization does not
 * have: for an object value (branding), a field added or changed. A field left out clears what was stored (as a delete
 * does) and the same values again set nothing new: neither needs the plan, so a settings form that sends the branding
 * back unchanged after a downgrade still saves its other fields.
 */
export function setsNewValue(stored: unknown, next: unknown): boolean {
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(next)) return !isDeepStrictEqual(stored, next);
  const was = isObject(stored) ? stored : {};
  return Object.entries(next).some(([field, value]) => !Object.hasOwn(was, field) || !isDeepStrictEqual(was[field], value));
}

/** Validates (and normalizes) one value for `scope`/`key`. Scope and key patterns are checked by the caller. */
export function checkSetting(scope: string, key: string, value: unknown): Checked {
  if (scope === ORG_SCOPE) {
    const check = own(ORG_SETTINGS, key);
    return check ? check(value) : bad(`unknown organization setting ${key} (known: ${Object.keys(ORG_SETTINGS).join(', ')})`);
  }
  if (value === null) return bad('must not be null: delete the setting to remove it');
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  return bytes <= APP_VALUE_MAX_BYTES ? ok(value) : bad(`value is ${bytes} bytes of JSON; at most ${APP_VALUE_MAX_BYTES} are allowed`);
}
