import { Inject, Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { checkOutboundUrl } from '../../platform/http/outbound.js';
import { AuditService } from '../audit/audit.service.js';
import { integrationRepository as integrations } from './integration.repository.js';
import { SECRET_BOX, SecretBox } from './secret-box.js';
import { CALDAV_TYPES } from './integration.repository.js';
import type { CreateIntegrationDto, IntegrationDto, SetIntegrationSecretDto, UpdateIntegrationDto } from './integration.dto.js';
import { IntegrationsErrors } from './integrations.errors.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';

const MAX_FIELDS = 20;
const MAX_VALUE = 4096;

/** The signed-in user's integrations (policies: auth.uid() = user_id). Secrets are write-only. */
@Injectable()
export class IntegrationsService {
  constructor(
    private readonly audit: AuditService,
    @Inject(SECRET_BOX) private readonly box: SecretBox,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  list(tx: TenantTx): Promise<IntegrationDto[]> {
    return integrations.list(tx.db);
  }

  /** `lock`: read for the update or delete that follows in the transaction (the row locked until commit). */
  async get(tx: TenantTx, id: string, lock?: 'update' | 'delete'): Promise<IntegrationDto> {
    const found = await integrations.get(tx.db, id, { lock });
    if (!found) throw IntegrationsErrors.notFound('integration', id);
    return found;
  }

  async create(tx: TenantTx, dto: CreateIntegrationDto): Promise<IntegrationDto> {
    const created = await integrations.create(tx.db, userIdOf(tx), dto);
    if (!created) throw IntegrationsErrors.error('integration.exists', `you already have an integration of type ${dto.integrationType}`);
    await this.audit.record(tx, { action: 'integration.created', entityType: 'integration', entityId: created.id, after: created });
    return created;
  }

  async update(tx: TenantTx, id: string, dto: UpdateIntegrationDto): Promise<IntegrationDto> {
    // locked: a concurrent update is waited for, and audited as what this one replaces
    const before = await this.get(tx, id, 'update');
    const after = await integrations.update(tx.db, id, dto);
    if (!after) throw IntegrationsErrors.notFound('integration', id);
    await this.audit.record(tx, { action: 'integration.updated', entityType: 'integration', entityId: id, before, after });
    return after;
  }

  async delete(tx: TenantTx, id: string): Promise<void> {
    const before = await this.get(tx, id, 'delete');
    if (!(await integrations.delete(tx.db, id))) throw IntegrationsErrors.notFound('integration', id);
    await this.audit.record(tx, { action: 'integration.deleted', entityType: 'integration', entityId: id, before });
  }

  /** Sets or replaces the secret. Only its sealed form reaches the database, the audit log or the response. */
  async setSecret(tx: TenantTx, id: string, dto: SetIntegrationSecretDto): Promise<IntegrationDto> {
    const integration = await this.get(tx, id);
    const credentials = this.checkCredentials(integration.integrationType, dto.credentials);
    const sealed = this.box.seal(credentials, { integrationId: id, userId: userIdOf(tx) });
    const { replaced } = await integrations.putSecret(tx.db, id, sealed);
    await this.audit.record(tx, {
      action: replaced ? 'integration.secret_replaced' : 'integration.secret_set', entityType: 'integration', entityId: id,
      before: { hasSecret: replaced }, after: { hasSecret: true, keyId: sealed.kid },
    });
    return { ...integration, hasSecret: true };
  }

  async deleteSecret(tx: TenantTx, id: string): Promise<void> {
    await this.get(tx, id);
    if (!(await integrations.deleteSecret(tx.db, id))) throw IntegrationsErrors.notFound('integration_secret', id);
    await this.audit.record(tx, { action: 'integration.secret_deleted', entityType: 'integration', entityId: id, before: { hasSecret: true }, after: { hasSecret: false } });
  }

  private checkCredentials(type: string, raw: Record<string, unknown>): Record<string, string> {
    return checkCredentials(type, raw, { httpsOnly: this.config.nodeEnv === 'production', allowPrivateNetworks: this.config.outbound.allowPrivateNetworks },
      (message) => IntegrationsErrors.error('integration.secret_invalid', message));
  }
}

/**
 * Shape checks whose messages name fields, never values: when a secret is set, and again when CalDAV credentials are
 * opened (the owner may change integration_type over REST after the secret was checked for another type).
 */
export function checkCredentials(
  type: string, raw: Record<string, unknown>, o: { httpsOnly: boolean; allowPrivateNetworks: boolean }, fail: (message: string) => Error,
): Record<string, string> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw fail('credentials must be an object');
  const entries = Object.entries(raw);
  if (entries.length === 0 || entries.length > MAX_FIELDS) throw fail(`credentials must have 1 to ${MAX_FIELDS} fields`);
  for (const [key, value] of entries) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(key)) throw fail('credential field names must be letters, digits or _');
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_VALUE) {
      throw fail(`credentials.${key} must be a non-empty string of at most ${MAX_VALUE} characters`);
    }
  }
  const creds = raw as Record<string, string>;
  if (CALDAV_TYPES.includes(type)) {
    const allowed = type === 'caldav' ? ['username', 'password', 'serverUrl'] : ['username', 'password'];
    const unknown = Object.keys(creds).filter((k) => !allowed.includes(k));
    if (unknown.length) throw fail(`credentials for ${type} take only ${allowed.join(', ')}; not ${unknown.join(', ')}`);
    for (const k of ['username', 'password']) {
      if (!creds[k]) throw fail(`credentials.${k} is required for ${type}`);
    }
    if (type === 'caldav') {
      if (!creds.serverUrl) throw fail('credentials.serverUrl is required for caldav');
      // the same check as a webhook's or an AI provider's URL; a host name is checked again when connecting
      checkOutboundUrl(creds.serverUrl, {
        field: 'credentials.serverUrl', example: 'https://caldav.example.com/', httpsOnly: o.httpsOnly,
        allowPrivateNetworks: o.allowPrivateNetworks, credentialsHint: 'username and password go in credentials',
      }, (_kind, message) => fail(message));
    }
  }
  return creds;
}

export function userIdOf(tx: TenantTx): string {
  if (tx.principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'only a signed-in user has integrations');
  return tx.principal.userId;
}
