-- The distinct event names an organization's apps have sent, so their number can be capped (ANALYTICS_MAX_EVENT_NAMES,
-- default 500).
--
-- Nothing limited how many names an organization created: any member or key with analytics:write could send 500 new
-- names per batch, each a row of core.analytics_daily per day, growing the all-organization roll-up statement, the
-- daily read and the roll-up's feature-usage gauge without bound. An app's batch now registers its new names here
-- (AnalyticsService.ingest): under a transaction-scoped advisory lock per organization it counts the names held and
-- refuses, event by event, the new names past the cap; names already held are checked by primary key only, without
-- the lock. Server events (modules' own, a fixed set) are not registered. The nightly job forgets a name once the
-- roll-ups of the retention hold none of it (AnalyticsMaintenanceJob.maintainPartitions).

CREATE TABLE core.analytics_event_names (
  org_id uuid NOT NULL REFERENCES core.organizations(id) ON DELETE CASCADE,
  name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.:-]{0,99}$'),
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, name)
);

ALTER TABLE core.analytics_event_names ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- whoever may send the organization's events reads and adds its names (as core.analytics_events takes them)
CREATE POLICY analytics_event_names_read ON core.analytics_event_names FOR SELECT TO authenticated
  USING (org_id = public.auth_org_id() AND public.auth_has_scope('analytics:write'));
CREATE POLICY analytics_event_names_insert ON core.analytics_event_names FOR INSERT TO authenticated
  WITH CHECK (org_id = public.auth_org_id() AND public.auth_has_scope('analytics:write'));
CREATE POLICY analytics_event_names_service ON core.analytics_event_names FOR ALL TO service_role USING (true) WITH CHECK (true);
-- as every table the API writes (20270205000900): not over Supabase's REST API, only in a verified transaction
CREATE POLICY rest_path_closed_insert ON core.analytics_event_names AS RESTRICTIVE FOR INSERT TO authenticated
  WITH CHECK (public.auth_claims_verified());

REVOKE ALL ON core.analytics_event_names FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT ON core.analytics_event_names TO authenticated;
GRANT SELECT, INSERT, DELETE ON core.analytics_event_names TO service_role;

-- the names the apps of each organization already use: still accepted, even past the cap (only new ones are refused)
INSERT INTO core.analytics_event_names (org_id, name, first_seen_at)
SELECT e.org_id, e.name, min(e.received_at)
FROM core.analytics_events e JOIN core.organizations o ON o.id = e.org_id
WHERE e.source = 'client'
GROUP BY 1, 2;
