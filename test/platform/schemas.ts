/**
 * The schemas OmniZen owns. Platform tests are generic over every table, view and function in
 * them, so each module's migrations are checked as soon as they exist. Not ours: `auth`
 * (Supabase's), `omnizen_migrations` (the runner's bookkeeping), pg_catalog/information_schema.
 */
export const OUR_SCHEMAS = ['core', 'hub', 'finance', 'ai', 'public', 'semantic'] as const;

/** `$1` for queries: `WHERE n.nspname = ANY($1)` */
export const SCHEMAS_PARAM = [OUR_SCHEMAS as unknown as string[]];

/** Objects created by an extension (e.g. pgcrypto's functions in public) are the extension's, not ours. */
export const NOT_FROM_EXTENSION = (oidColumn: string, catalog: 'pg_class' | 'pg_proc') =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oidColumn} AND d.deptype = 'e')`;
