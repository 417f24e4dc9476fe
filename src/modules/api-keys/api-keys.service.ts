import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { Clock } from '../../platform/clock/clock.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { AuditService } from '../audit/audit.service.js';
import { apiKeyRepository } from './api-key.repository.js';
import { organizationRepository } from '../organizations/organization.repository.js';
import type { ApiKeyDto, ApiKeyListStatus, CreateApiKeyDto, CreatedApiKeyDto } from './api-key.dto.js';
import { ApiKeyErrors } from './api-keys.errors.js';
import { newApiKeySecret } from './api-key-secret.js';

/** Scoped API keys of an organization: created by its owners and admins, shown once, revoked at once. */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  private personOf(tx: TenantTx): string {
    if (tx.principal.kind !== 'user') throw ApiKeyErrors.error('api_keys.user_required', 'only an owner or admin, signed in, manages API keys');
    return tx.principal.userId;
  }

  async create(tx: TenantTx, dto: CreateApiKeyDto): Promise<CreatedApiKeyDto> {
    const userId = this.personOf(tx);
    const expiresAt = dto.expiresAt ? new Date(dto.expiresAt) : null;
    if (expiresAt && expiresAt.getTime() <= this.clock.now()) throw ApiKeyErrors.error('api_keys.expiry_past', 'expiresAt must be in the future');
    // a personal organization is its one person's, billed through their personal subscription, which a key (no person)
    // does not see: every request of such a key answered 402 (starter). The person acts there themselves.
    if ((await organizationRepository.get(tx.db, tx.orgId))?.accountType === 'personal') {
      throw ApiKeyErrors.error('api_keys.personal_organization', 'a personal organization takes no API keys: create them in a business organization');
    }
    // the route's role check used the role the transaction began with: a demotion or removal committed since would
    // otherwise leave the new key live (the membership trigger had nothing to revoke yet)
    const role = await apiKeyRepository.creatorRoleLocked(tx.db, tx.orgId, userId);
    if (role !== 'owner' && role !== 'admin') {
      throw PlatformErrors.error('forbidden.role', `this action needs the role owner or admin; you are ${role ?? 'not a member'}`);
    }
    const max = this.config.auth.apiKeysMaxActive;
    if (await apiKeyRepository.countLiveLocked(tx.db, tx.orgId, new Date(this.clock.now())) >= max) {
      throw ApiKeyErrors.error('api_keys.too_many_keys', `the organization already holds ${max} live API keys, the most it may: revoke one first`, { max });
    }
    const id = randomUUID();
    const { prefix, secret, secretHash } = newApiKeySecret(id);
    const key = await apiKeyRepository.insert(tx.db, { orgId: tx.orgId, id, name: dto.name, prefix, secretHash, scopes: dto.scopes, createdBy: userId, expiresAt });
    await this.audit.record(tx, { action: 'api_key.created', entityType: 'api_key', entityId: id, after: key });
    return { ...key, secret };
  }

  list(tx: TenantTx, status: ApiKeyListStatus): Promise<ApiKeyDto[]> {
    this.personOf(tx);
    return apiKeyRepository.list(tx.db, tx.orgId, status);
  }

  async revoke(tx: TenantTx, id: string): Promise<ApiKeyDto> {
    const userId = this.personOf(tx);
    const key = await apiKeyRepository.revoke(tx.db, tx.orgId, id, userId);
    if (!key) {
      if (await apiKeyRepository.get(tx.db, tx.orgId, id)) throw ApiKeyErrors.error('api_keys.already_revoked', `API key ${id} is already revoked`);
      throw ApiKeyErrors.notFound('api_key', id);
    }
    await this.audit.record(tx, { action: 'api_key.revoked', entityType: 'api_key', entityId: id, after: key });
    return key;
  }
}
