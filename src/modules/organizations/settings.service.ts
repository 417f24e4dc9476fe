import { Injectable } from '@nestjs/common';
import type { TenantTx } from '../../platform/database/database.service.js';
import { AuditService } from '../audit/audit.service.js';
import { EntitlementsService } from '../billing/entitlements.service.js';
import { settingRepository as settings } from './setting.repository.js';
import { checkSetting, KEY_PATTERN, ORG_SCOPE, PLAN_GATED_ORG_SETTINGS, SCOPE_PATTERN, setsNewValue } from './settings.registry.js';
import type { FeatureFlagDto, SettingDto } from './setting.dto.js';
import { OrganizationsErrors } from './organizations.errors.js';

function checkScope(scope: string): void {
  if (!SCOPE_PATTERN.test(scope)) {
    throw OrganizationsErrors.error('settings.invalid_scope', `scope "${scope}" must be 'org' or an app code (lowercase letters, digits, _)`);
  }
}

function checkKeys(keys: string[]): void {
  const badKeys = keys.filter((k) => !KEY_PATTERN.test(k));
  if (badKeys.length) {
    throw OrganizationsErrors.error('settings.invalid_key', `invalid key(s) ${badKeys.join(', ')}: keys are lowercase letters, digits, _ and ., starting with a letter, at most 128`);
  }
}

/** Organization-level (scope 'org') and app-level (scope = app code) settings, and feature flags. */
@Injectable()
export class SettingsService {
  constructor(
    private readonly audit: AuditService,
    private readonly entitlements: EntitlementsService,
  ) {}

  list(tx: TenantTx, scope: string): Promise<SettingDto[]> {
    checkScope(scope);
    return settings.list(tx.db, tx.orgId, scope);
  }

  async get(tx: TenantTx, scope: string, key: string): Promise<SettingDto> {
    checkScope(scope);
    checkKeys([key]);
    const s = await settings.get(tx.db, tx.orgId, scope, key);
    if (!s) throw OrganizationsErrors.notFound('setting', `${scope}/${key}`);
    return s;
  }

  /**
   * Validates every value first (naming each bad key), then checks the plan of each plan-gated key whose value sets
   * something new (branding needs white_label: 402 billing.feature_not_in_plan), then writes them all; one audit row
   * per key. The same value again, or one that only leaves fields out, needs no plan (setsNewValue), nor does removing
   * a gated setting (delete): an organization that lost the feature keeps saving its other settings and can clear it.
   */
  async put(tx: TenantTx, scope: string, values: Record<string, unknown>): Promise<SettingDto[]> {
    checkScope(scope);
    const keys = Object.keys(values);
    if (!keys.length) throw OrganizationsErrors.error('settings.empty', 'values must name at least one setting');
    checkKeys(keys);
    const checked = keys.map((key) => ({ key, r: checkSetting(scope, key, values[key]) }));
    const problems = checked.flatMap(({ key, r }) => (r.ok ? [] : [{ field: key, problems: [r.problem] }]));
    if (problems.length) {
      throw OrganizationsErrors.error('settings.invalid', problems.map((p) => `${p.field}: ${p.problems[0]}`).join('; '), problems);
    }
    if (scope === ORG_SCOPE) {
      for (const { key, r } of checked) {
        const feature = PLAN_GATED_ORG_SETTINGS.get(key);
        if (!feature || !r.ok) continue;
        // compared with the stored value locked until commit: no write in between can make this one a change
        const stored = await settings.get(tx.db, tx.orgId, scope, key, { lock: true });
        if (setsNewValue(stored?.value, r.value)) await this.entitlements.enforce(tx, { app: 'omnizen', feature });
      }
    }
    const out: SettingDto[] = [];
    for (const { key, r } of checked) {
      if (!r.ok) continue;
      const before = await settings.get(tx.db, tx.orgId, scope, key);
      const after = await settings.put(tx.db, tx.orgId, scope, key, r.value);
      await this.audit.record(tx, { action: 'setting.updated', entityType: 'setting', entityId: `${scope}/${key}`, before, after });
      out.push(after);
    }
    return out;
  }

  async delete(tx: TenantTx, scope: string, key: string): Promise<void> {
    const before = await this.get(tx, scope, key);
    if (!(await settings.delete(tx.db, tx.orgId, scope, key))) throw OrganizationsErrors.notFound('setting', `${scope}/${key}`); // deleted by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'setting.deleted', entityType: 'setting', entityId: `${scope}/${key}`, before });
  }

  listFlags(tx: TenantTx): Promise<FeatureFlagDto[]> {
    return settings.listFlags(tx.db, tx.orgId);
  }

  /** For other modules: whether `flag` is on in the request's organization (absent = off). */
  async isEnabled(tx: TenantTx, flag: string): Promise<boolean> {
    return (await settings.getFlag(tx.db, tx.orgId, flag))?.enabled ?? false;
  }

  async setFlag(tx: TenantTx, flag: string, enabled: boolean): Promise<FeatureFlagDto> {
    this.checkFlag(flag);
    const before = await settings.getFlag(tx.db, tx.orgId, flag);
    const after = await settings.putFlag(tx.db, tx.orgId, flag, enabled);
    await this.audit.record(tx, { action: 'feature_flag.set', entityType: 'feature_flag', entityId: flag, before, after });
    return after;
  }

  async deleteFlag(tx: TenantTx, flag: string): Promise<void> {
    this.checkFlag(flag);
    const before = await settings.getFlag(tx.db, tx.orgId, flag);
    if (!before) throw OrganizationsErrors.notFound('feature_flag', flag);
    if (!(await settings.deleteFlag(tx.db, tx.orgId, flag))) throw OrganizationsErrors.notFound('feature_flag', flag); // deleted by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'feature_flag.deleted', entityType: 'feature_flag', entityId: flag, before });
  }

  private checkFlag(flag: string): void {
    if (!KEY_PATTERN.test(flag)) {
      throw OrganizationsErrors.error('feature_flag.invalid_name', `flag "${flag}" must be lowercase letters, digits, _ and ., starting with a letter, at most 128`);
    }
  }
}
