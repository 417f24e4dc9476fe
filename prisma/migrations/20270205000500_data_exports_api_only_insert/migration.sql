-- core.data_exports: a REST caller forged a downloadable export of another organization.
--
-- `authenticated` held INSERT on every column, and the insert policy (20270108000100) checked only kind, org_id,
-- user_id and ownership, which every user has of their personal organization. Over Supabase's REST API (PostgREST) a
-- user inserted into their personal organization a row already `ready`, its file_name another organization's archive
-- (`<that export's id>.zip`, the id read from an audit log) and a future expiry, or a row carrying that export's very id;
-- GET /v1/orgs/{personal}/data-exports/{id} then signed a download link, and the link served the other archive. A
-- forged `ready` row past its expiry made the retention job delete the other archive.
--
-- The API inserts only kind, org_id and user_id (an organization's export in its verified tenant transaction; a
-- person's on the privileged path as service_role); the job and the retention purge update on the privileged path.
-- So `authenticated` may insert those three columns only, in a transaction whose claims begin_request verified (the
-- API's runtime login, as for audit rows and outbox jobs: 20270202000200), and only a queued row without a file.
-- Rows forged before expire here: a ready row whose file is not its own id's, and every row of an id held twice (ids
-- are not unique across organizations; the API never repeats one). Their files are left alone: they are others'.

REVOKE INSERT ON core.data_exports FROM authenticated;
GRANT INSERT (kind, org_id, user_id) ON core.data_exports TO authenticated;

ALTER POLICY data_exports_owner_insert ON core.data_exports
  WITH CHECK (public.auth_claims_verified()
              AND kind = 'organization' AND org_id = public.auth_org_id() AND public.auth_has_role('owner')
              AND user_id = public.auth_user_id()
              AND status = 'queued' AND file_name IS NULL AND expires_at IS NULL);

UPDATE core.data_exports SET status = 'expired'
WHERE status <> 'expired'
  AND ((file_name IS NOT NULL AND file_name <> id::text || '.zip')
       OR id IN (SELECT d.id FROM core.data_exports d GROUP BY d.id HAVING count(*) > 1));
