import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { translateDatabaseError } from '../../platform/errors/database-errors.js';
import { AuditService } from '../audit/audit.service.js';
import { providerRepository as providers } from './provider.repository.js';
import { userIdOf } from './integrations.service.js';
import type { ProviderDto, UpdateProviderDto } from './provider.dto.js';
import { ProvidersErrors } from './providers.errors.js';

/** Slugs that would collide with pages or words of the product. */
export const RESERVED_SLUGS = new Set([
  'about', 'account', 'admin', 'api', 'app', 'apps', 'assets', 'auth', 'billing', 'blog', 'book', 'booking', 'c', 'calendar',
  'contact', 'dashboard', 'docs', 'edit', 'help', 'home', 'login', 'logout', 'me', 'new', 'null', 'omnizen', 'privacy',
  'provider', 'providers', 'public', 'register', 'root', 'settings', 'signin', 'signup', 'static', 'status', 'support',
  'system', 'terms', 'undefined', 'user', 'users', 'www',
]);

export const DEFAULT_TIMEZONE = 'Asia/Dubai';

/** The signed-in user's provider profile (policies: auth.uid() = owner_user_id). */
@Injectable()
export class ProvidersService {
  constructor(private readonly audit: AuditService) {}

  /** The saved profile, or the defaults when none was saved yet. */
  async get(tx: TenantTx): Promise<ProviderDto> {
    return (await providers.mine(tx.db)) ?? {
      id: null, publicSlug: null, isPublic: false, timezone: DEFAULT_TIMEZONE, settings: {}, createdAt: null, updatedAt: null,
    };
  }

  async update(tx: TenantTx, dto: UpdateProviderDto): Promise<ProviderDto> {
    if (dto.publicSlug && RESERVED_SLUGS.has(dto.publicSlug)) {
      throw ProvidersErrors.error('provider.slug_reserved', `publicSlug "${dto.publicSlug}" is reserved; choose another`);
    }
    const hours = dto.settings?.workingHours;
    if (hours && hours.start >= hours.end) {
      throw ProvidersErrors.error('provider.working_hours_invalid', 'settings.workingHours.start must be before settings.workingHours.end');
    }
    // the row first (a first save made concurrently is waited for: one of them creates it), then locked: the slug a public
    // page needs is checked against what this update replaces, and a concurrent first save audits as an update of it
    const created = await providers.createIfMissing(tx.db, userIdOf(tx));
    const before = created ? undefined : await providers.mine(tx.db, { lock: true });
    const publicSlug = dto.publicSlug !== undefined ? dto.publicSlug : before?.publicSlug ?? null;
    const isPublic = dto.isPublic ?? before?.isPublic ?? false;
    if (isPublic && !publicSlug) {
      throw ProvidersErrors.error('provider.slug_required', 'a public profile needs a publicSlug');
    }
    const after = await translateDatabaseError(providers.upsert(tx.db, userIdOf(tx), {
      publicSlug: dto.publicSlug, isPublic: dto.isPublic, timezone: dto.timezone,
      settings: dto.settings && JSON.parse(JSON.stringify(dto.settings)),
    }), { '23505': () => ProvidersErrors.error('provider.slug_taken', `publicSlug "${dto.publicSlug}" is taken; choose another`) });
    await this.audit.record(tx, {
      action: before ? 'provider.updated' : 'provider.created', entityType: 'provider', entityId: after.id, before: before ?? undefined, after,
    });
    return after;
  }
}
