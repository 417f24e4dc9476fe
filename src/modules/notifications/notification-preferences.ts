import type { PreferenceRow } from './notification.repository.js';
import type { NotificationCategory, NotificationChannel } from './notification.dto.js';

/**
 * Without a stored preference every channel is on, without digest; security is on, and its mail immediate (a sign-in
 * alert an hour late is too late), whatever is stored (a digest stored before 20270207900100 is ignored).
 */
export function effectivePreference(stored: PreferenceRow[] | undefined, category: NotificationCategory, channel: NotificationChannel): PreferenceRow {
  const found = stored?.find((p) => p.category === category && p.channel === channel);
  const enabled = category === 'security' ? true : found?.enabled ?? true;
  return { category, channel, enabled, digest: channel === 'email' && category !== 'security' && enabled && (found?.digest ?? false) };
}
