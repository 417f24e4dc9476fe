-- Personal data keys follow a change of SECRETS_ACTIVE_KEY (npm run secrets:rotate): the command re-wraps every
-- per-person key that is not wrapped under the active key (or, set up without SECRETS_KEYS, not wrapped at all),
-- on the privileged path secrets.rotate (service_role). Before, it re-sealed integration, provider and webhook
-- secrets only: removing the old key afterwards, as the command tells, left every person's key unopenable and
-- every sealed audit snapshot unreadable. Only the wrapping changes, never the key, so sealed snapshots still open.
GRANT UPDATE (wrapped) ON core.personal_data_keys TO service_role;
