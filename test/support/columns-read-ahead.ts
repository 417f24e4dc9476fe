import type pg from 'pg';

/**
 * Columns this release's code reads that a migration newer than an upgrade test's starting point adds. An upgrade test
 * migrates an old schema, drives this release's API on it to make the data of that time, then applies the rest of the
 * migrations: the API's reads of these columns would fail on the old schema. It adds them (empty) for its API calls and
 * drops them again before the rest of the migrations, which add them for real.
 */
const COLUMNS_READ_AHEAD: readonly { table: string; column: string; type: string; addedBy: string }[] = [
  { table: 'hub.subscription_billing', column: 'price_misfit', type: 'text', addedBy: '20270211002800_subscription_price_misfit' },
  { table: 'hub.subscription_billing', column: 'events_dated_until', type: 'timestamptz', addedBy: '20270211003600_subscription_events_dated_until' },
  // the runs' and embeddings' reservations read them (the migration's defaults: a row of the catalog never reads empty)
  { table: 'ai.models', column: 'input_token_factor', type: 'numeric(4, 2) NOT NULL DEFAULT 2.00', addedBy: '20270211004100_ai_models_input_margins' },
  { table: 'ai.models', column: 'input_token_overhead', type: 'integer NOT NULL DEFAULT 512', addedBy: '20270211004100_ai_models_input_margins' },
];

/**
 * Functions this release's code calls that a newer migration adds: stand-ins with the same signature for the API calls
 * of an upgrade test (the lock functions of 20270211003700 on advisory locks: no analyst in these tests).
 */
const FUNCTIONS_READ_AHEAD: readonly { signature: string; returns: string; body: string; addedBy: string }[] = [
  { signature: 'core.xact_lock(text)', returns: 'void', body: 'SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))', addedBy: '20270211003700_lock_rows' },
  { signature: 'core.xact_lock_shared(text)', returns: 'void', body: 'SELECT pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtextextended($1, 0))', addedBy: '20270211003700_lock_rows' },
  { signature: 'core.try_xact_lock(text)', returns: 'boolean', body: 'SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))', addedBy: '20270211003700_lock_rows' },
];

/** Adds the columns (and function stand-ins) read ahead whose migration sorts after `migratedUntil` (the last migration applied). */
export async function addColumnsReadAhead(admin: pg.Pool, migratedUntil: string): Promise<void> {
  for (const c of COLUMNS_READ_AHEAD.filter((c) => c.addedBy > migratedUntil)) {
    await admin.query(`ALTER TABLE ${c.table} ADD COLUMN IF NOT EXISTS ${c.column} ${c.type}`);
  }
  for (const f of FUNCTIONS_READ_AHEAD.filter((f) => f.addedBy > migratedUntil)) {
    await admin.query(`CREATE FUNCTION ${f.signature} RETURNS ${f.returns} LANGUAGE sql AS $$${f.body}$$`);
    await admin.query(`GRANT EXECUTE ON FUNCTION ${f.signature} TO authenticated, service_role`);
  }
}

/** Drops them again (before the rest of the migrations run). */
export async function dropColumnsReadAhead(admin: pg.Pool, migratedUntil: string): Promise<void> {
  for (const c of COLUMNS_READ_AHEAD.filter((c) => c.addedBy > migratedUntil)) {
    await admin.query(`ALTER TABLE ${c.table} DROP COLUMN IF EXISTS ${c.column}`);
  }
  for (const f of FUNCTIONS_READ_AHEAD.filter((f) => f.addedBy > migratedUntil)) {
    await admin.query(`DROP FUNCTION IF EXISTS ${f.signature}`);
  }
}
