import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { organizationEndpointFetch, platformConnection, type ProviderConnection } from '../../platform/ai/openai-provider.js';
import { checkOutboundUrl } from '../../platform/http/outbound.js';
import { AuditService } from '../audit/audit.service.js';
import { secretBoxFromConfig } from '../integrations/integrations.module.js';
import { SecretOpenError, type SecretBox, type SecretOwner } from '../integrations/secret-box.js';
import { AgentErrors } from './agents.errors.js';
import type { ProviderKeyDto, SetProviderKeyDto } from './agents.dto.js';
import { agentsRepository as repo } from './agents.repository.js';

/** The secret box's associated data for an organization's provider key: a ciphertext moved to another organization fails to open. */
export const providerKeyOwner = (orgId: string): SecretOwner => ({ integrationId: orgId, userId: 'ai.provider_key' });

/**
 * The provider key a run uses: the organization's own (sealed with the integrations' secret box, rotated by
 * `npm run secrets:rotate` with the integration secrets) or the platform's default from config.
 */
@Injectable()
export class ProviderKeysService {
  private readonly box: SecretBox;
  /** for the organizations' own endpoints: user-chosen URLs, so no private addresses in production */
  private readonly endpointFetch: typeof fetch;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly audit: AuditService,
  ) {
    this.box = secretBoxFromConfig(config);
    this.endpointFetch = organizationEndpointFetch(config.outbound.allowPrivateNetworks);
  }

  /** A base URL the API may call with the organization's key: http(s), no credentials, not an address of its own network. */
  private checkBaseUrl(raw: string): string {
    checkOutboundUrl(raw, {
      field: 'baseUrl', example: 'https://api.openai.com/v1', httpsOnly: false, allowPrivateNetworks: this.config.outbound.allowPrivateNetworks,
      credentialsHint: 'the key goes in apiKey',
    }, (kind, message) => AgentErrors.error(kind === 'invalid' ? 'ai.base_url_invalid' : 'ai.base_url_not_public', message));
    return raw;
  }

  async get(tx: TenantTx): Promise<ProviderKeyDto> {
    const k = await repo.providerKey(tx.db, tx.orgId);
    if (!k) throw AgentErrors.notFound('provider_key');
    return { keyHint: k.keyHint, baseUrl: k.baseUrl, updatedAt: k.updatedAt.toISOString() };
  }

  async set(tx: TenantTx, dto: SetProviderKeyDto): Promise<ProviderKeyDto> {
    const baseUrl = dto.baseUrl ? this.checkBaseUrl(dto.baseUrl) : null;
    const secret = this.box.seal({ apiKey: dto.apiKey }, providerKeyOwner(tx.orgId));
    const before = await repo.providerKey(tx.db, tx.orgId);
    const saved = await repo.setProviderKey(tx.db, tx.orgId, {
      secret, baseUrl, keyHint: dto.apiKey.slice(-4), createdBy: tx.principal.kind === 'user' ? tx.principal.userId : null,
    });
    // the audit row names the hint and endpoint, never the key
    await this.audit.record(tx, {
      action: before ? 'ai.provider_key_replaced' : 'ai.provider_key_set', entityType: 'ai_provider_key', entityId: tx.orgId,
      before: before ? { keyHint: before.keyHint, baseUrl: before.baseUrl } : undefined, after: { keyHint: saved.keyHint, baseUrl: saved.baseUrl },
    });
    return saved;
  }

  async remove(tx: TenantTx): Promise<void> {
    const before = await repo.providerKey(tx.db, tx.orgId);
    if (!before) throw AgentErrors.notFound('provider_key');
    if (!(await repo.deleteProviderKey(tx.db, tx.orgId))) throw AgentErrors.notFound('provider_key'); // removed by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'ai.provider_key_removed', entityType: 'ai_provider_key', entityId: tx.orgId, before: { keyHint: before.keyHint, baseUrl: before.baseUrl } });
  }

  /** The connection for a run of the organization (inside a transaction as the runner). */
  async connection(db: Db, orgId: string): Promise<ProviderConnection> {
    const own = await repo.providerKey(db, orgId);
    if (own) {
      let apiKey: string;
      try {
        apiKey = this.box.open<{ apiKey: string }>(own.secret, providerKeyOwner(orgId)).apiKey;
      } catch (err) {
        if (err instanceof SecretOpenError) throw AgentErrors.error('ai.no_provider_key', 'the organization\'s provider key cannot be opened (its encryption key is not configured); store it again');
        throw err;
      }
      // its own endpoint goes through the outbound guard; without one, the platform's
      if (own.baseUrl) return { baseUrl: own.baseUrl, apiKey, timeoutMs: this.config.ai.timeoutMs, fetch: this.endpointFetch };
      return { baseUrl: this.config.ai.baseUrl, apiKey, timeoutMs: this.config.ai.timeoutMs };
    }
    const platform = platformConnection(this.config);
    if (!platform) throw AgentErrors.error('ai.no_provider_key', 'no provider key: the platform has none (AI_API_KEY) and the organization has not stored its own (PUT /ai/provider-key)');
    return platform;
  }
}
