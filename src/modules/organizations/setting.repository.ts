import type { Db } from '../../platform/database/database.service.js';
import type { FeatureFlagDto, SettingDto } from './setting.dto.js';

const toSetting = (r: any): SettingDto => ({ scope: r.scope, key: r.key, value: r.value, updatedAt: r.updated_at });
const toFlag = (r: any): FeatureFlagDto => ({ flag: r.flag, enabled: r.enabled, updatedAt: r.updated_at });

/** core.settings and core.feature_flags: members read, admins write (policies). */
export const settingRepository = {
  async list(db: Db, orgId: string, scope: string): Promise<SettingDto[]> {
    const rows = await db.$queryRaw<any[]>`SELECT * FROM core.settings WHERE org_id = ${orgId}::uuid AND scope = ${scope} ORDER BY key`;
    return rows.map(toSetting);
  },

  async get(db: Db, orgId: string, scope: string, key: string): Promise<SettingDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`SELECT * FROM core.settings WHERE org_id = ${orgId}::uuid AND scope = ${scope} AND key = ${key}`;
    return row && toSetting(row);
  },

  async put(db: Db, orgId: string, scope: string, key: string, value: unknown): Promise<SettingDto> {
    const [row] = await db.$queryRaw<any[]>`
      INSERT INTO core.settings (org_id, scope, key, value) VALUES (${orgId}::uuid, ${scope}, ${key}, ${JSON.stringify(value)}::jsonb)
      ON CONFLICT (org_id, scope, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
      RETURNING *`;
    return toSetting(row);
  },

  async delete(db: Db, orgId: string, scope: string, key: string): Promise<boolean> {
    return (await db.$executeRaw`DELETE FROM core.settings WHERE org_id = ${orgId}::uuid AND scope = ${scope} AND key = ${key}`) > 0;
  },

  async listFlags(db: Db, orgId: string): Promise<FeatureFlagDto[]> {
    const rows = await db.$queryRaw<any[]>`SELECT * FROM core.feature_flags WHERE org_id = ${orgId}::uuid ORDER BY flag`;
    return rows.map(toFlag);
  },

  async getFlag(db: Db, orgId: string, flag: string): Promise<FeatureFlagDto | undefined> {
    const [row] = await db.$queryRaw<any[]>`SELECT * FROM core.feature_flags WHERE org_id = ${orgId}::uuid AND flag = ${flag}`;
    return row && toFlag(row);
  },

  async putFlag(db: Db, orgId: string, flag: string, enabled: boolean): Promise<FeatureFlagDto> {
    const [row] = await db.$queryRaw<any[]>`
      INSERT INTO core.feature_flags (org_id, flag, enabled) VALUES (${orgId}::uuid, ${flag}, ${enabled})
      ON CONFLICT (org_id, flag) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()
      RETURNING *`;
    return toFlag(row);
  },

  async deleteFlag(db: Db, orgId: string, flag: string): Promise<boolean> {
    return (await db.$executeRaw`DELETE FROM core.feature_flags WHERE org_id = ${orgId}::uuid AND flag = ${flag}`) > 0;
  },
};
