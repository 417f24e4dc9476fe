-- The daily roll-up (analyticsRepository.rollUp, one statement for every organization over the days to redo) selects
-- the events by an occurred_at range; the only index on the table leads on org_id, so every partition in the span was
-- read whole. An index on occurred_at serves that range (and the active-users gauge's 30 days, also across
-- organizations). Created on the partitioned parent: PostgreSQL builds it on each partition, and the partitions
-- core.analytics_create_partitions makes later get it too. The parent and its partitions belong to the migration role
-- (the partitions are made by its SECURITY DEFINER function), which is all CREATE INDEX needs: no superuser.
-- Not CONCURRENTLY: that is refused on a partitioned table and inside the migration's transaction.
CREATE INDEX analytics_events_occurred_at_idx ON core.analytics_events (occurred_at);
