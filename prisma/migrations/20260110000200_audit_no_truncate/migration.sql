-- TRUNCATE fires no row triggers, so audit_logs_append_only does not stop it; TRUNCATE is revoked from
-- the API's roles, and this statement trigger stops the owner connection too.
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON core.audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION core.reject_change();
