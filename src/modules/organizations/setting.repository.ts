import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';
import type { FeatureFlagDto, SettingDto } from './setting.dto.js';

const SETTING = ['scope', 'key', 'value', 'updated_at as updatedAt'] as const;
const FLAG = ['flag', 'enabled', 'updated_at as updatedAt'] as const;

/** core.settings and core.feature_flags: members read, admins write (policies). */
export const settingRepository = {
  async list(db: Db, orgId: string, scope: string): Promise<SettingDto[]> {
    return db.run(qb.selectFrom('core.settings').select(SETTING).where('org_id', '=', orgId).where('scope', '=', scope).orderBy('key'));
  },

  /** `lock`: the row stays locked until commit (FOR UPDATE), so what the caller compares with is what it replaces. */
  async get(db: Db, orgId: string, scope: string, key: string, o: { lock?: boolean } = {}): Promise<SettingDto | undefined> {
    const q = qb.selectFrom('core.settings').select(SETTING).where('org_id', '=', orgId).where('scope', '=', scope).where('key', '=', key);
    const [row] = await db.run(o.lock ? q.forUpdate() : q);
    return row;
  },

  async put(db: Db, orgId: string, scope: string, key: string, value: unknown): Promise<SettingDto> {
    const [row] = await db.run(qb.insertInto('core.settings').values({ org_id: orgId, scope, key, value: JSON.stringify(value) })
      .onConflict((c) => c.columns(['org_id', 'scope', 'key']).doUpdateSet((eb) => ({ value: eb.ref('excluded.value'), updated_at: sql`now()` })))
      .returning(SETTING));
    return row;
  },

  async delete(db: Db, orgId: string, scope: string, key: string): Promise<boolean> {
    return (await db.runCount(qb.deleteFrom('core.settings').where('org_id', '=', orgId).where('scope', '=', scope).where('key', '=', key))) > 0;
  },

  async listFlags(db: Db, orgId: string): Promise<FeatureFlagDto[]> {
    return db.run(qb.selectFrom('core.feature_flags').select(FLAG).where('org_id', '=', orgId).orderBy('flag'));
  },

  async getFlag(db: Db, orgId: string, flag: string): Promise<FeatureFlagDto | undefined> {
    const [row] = await db.run(qb.selectFrom('core.feature_flags').select(FLAG).where('org_id', '=', orgId).where('flag', '=', flag));
    return row;
  },

  async putFlag(db: Db, orgId: string, flag: string, enabled: boolean): Promise<FeatureFlagDto> {
    const [row] = await db.run(qb.insertInto('core.feature_flags').values({ org_id: orgId, flag, enabled })
      .onConflict((c) => c.columns(['org_id', 'flag']).doUpdateSet((eb) => ({ enabled: eb.ref('excluded.enabled'), updated_at: sql`now()` })))
      .returning(FLAG));
    return row;
  },

  async deleteFlag(db: Db, orgId: string, flag: string): Promise<boolean> {
    return (await db.runCount(qb.deleteFrom('core.feature_flags').where('org_id', '=', orgId).where('flag', '=', flag))) > 0;
  },
};
