import type pg from 'pg';
import { NOT_FROM_EXTENSION, SCHEMAS_PARAM } from './schemas.js';

/**
 * Every privilege any role other than the owner holds on our schemas and on every table, view, sequence, column and
 * function in them: `{ 'table core.organizations': { authenticated: 'DELETE,INSERT,SELECT,UPDATE', ... } }`
 * (privileges sorted, PUBLIC as `PUBLIC`). The catalog tests compare it with PRIVILEGES_ALLOWED below, on plain
 * PostgreSQL and on a Supabase-shaped database (whose default privileges would add grants the migrations revoke).
 */
export async function privilegesHeld(db: pg.Pool | pg.Client): Promise<Record<string, Record<string, string>>> {
  const { rows } = await db.query<{ object: string; grantee: string; privileges: string }>(
    `WITH objects AS (
       SELECT 'schema ' || quote_ident(n.nspname) AS object, n.nspowner AS owner, n.nspacl AS acl
       FROM pg_namespace n WHERE n.nspname = ANY($1) AND n.nspname <> 'public'
       UNION ALL
       SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view ' ELSE 'table ' END
                || format('%I.%I', n.nspname, c.relname),
              c.relowner, coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('c.oid', 'pg_class')}
       UNION ALL
       SELECT format('column %I.%I(%I)', n.nspname, c.relname, a.attname), c.relowner, a.attacl
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE a.attacl IS NOT NULL AND n.nspname = ANY($1)
       UNION ALL
       SELECT format('function %I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)), p.proowner, coalesce(p.proacl, acldefault('f'::"char", p.proowner))
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = ANY($1) AND ${NOT_FROM_EXTENSION('p.oid', 'pg_proc')}
     )
     SELECT o.object, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
            string_agg(DISTINCT a.privilege_type, ',' ORDER BY a.privilege_type) AS privileges
     FROM objects o CROSS JOIN LATERAL aclexplode(o.acl) a
     WHERE a.grantee <> o.owner
     GROUP BY 1, 2 ORDER BY 1, 2`, SCHEMAS_PARAM);
  const held: Record<string, Record<string, string>> = {};
  for (const r of rows) (held[r.object] ??= {})[r.grantee] = r.privileges;
  return held;
}

/** Objects with no grant at all (trigger functions, identity sequences, internal helpers) are simply absent. */
const RW = 'DELETE,INSERT,SELECT,UPDATE';
const HELPER_CALLERS = { anon: 'EXECUTE', authenticated: 'EXECUTE', finance_posting: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' };

/**
 * The allow-list: exactly the privileges the project intends (20261201000100_supabase_privileges sets them; every
 * later migration sets those of its own objects). A new object, or a new grant, is added here on purpose.
 * TRUNCATE, REFERENCES and TRIGGER appear nowhere.
 */
export const PRIVILEGES_ALLOWED: Record<string, Record<string, string>> = {
  'schema core': { anon: 'USAGE', authenticated: 'USAGE', finance_posting: 'USAGE', service_role: 'USAGE' },
  'schema hub': { authenticated: 'USAGE', service_role: 'USAGE' },
  'schema finance': { authenticated: 'USAGE', finance_posting: 'USAGE', omnizen_analyst: 'USAGE', service_role: 'USAGE' },
  'schema semantic': { authenticated: 'USAGE', omnizen_analyst: 'USAGE', service_role: 'USAGE' },
  'schema ai': { authenticated: 'USAGE', service_role: 'USAGE' },

  // a user edits their name and image; the e-mail changes only through the confirmed change (20270201000500)
  'table core."User"': { authenticated: 'SELECT', service_role: RW },
  'column core."User"(name)': { authenticated: 'UPDATE' },
  'column core."User"(image)': { authenticated: 'UPDATE' },
  'column core."User"("updatedAt")': { authenticated: 'UPDATE' },
  'table core.analyst_logins': { service_role: RW },
  'table core.app_token_redemptions': { service_role: 'DELETE,INSERT,SELECT' },
  // accounts the Hub made before identities: read and consumed by their first Hub sign-in (20270210960100)
  'table core.legacy_hub_accounts': { service_role: 'DELETE,SELECT' },
  'table core.email_verification_tokens': { service_role: RW },
  'table core.audit_logs': { authenticated: 'INSERT,SELECT', finance_posting: 'INSERT', service_role: 'INSERT,SELECT' },
  'table core.feature_flags': { authenticated: RW, service_role: RW },
  'table core.invitations': { authenticated: RW, service_role: RW },
  'table core.memberships': { authenticated: RW, service_role: RW },
  'table core.organizations': { authenticated: RW, service_role: RW },
  'table core.outbox': { authenticated: RW, service_role: RW },
  'table core.refresh_tokens': { service_role: RW },
  // a user ends their own live session, never brings one back (20270201000500)
  'table core.sessions': { authenticated: 'SELECT', service_role: RW },
  'column core.sessions(revoked_at)': { authenticated: 'UPDATE' },
  'column core.sessions(revoked_reason)': { authenticated: 'UPDATE' },
  'table core.settings': { authenticated: RW, service_role: RW },
  'table core.user_credentials': { service_role: RW },
  'table core.user_identities': { service_role: RW },
  'table core.workspaces': { authenticated: RW, service_role: RW },
  // the posting checks a line's workspace (20270203000100)
  'column core.workspaces(org_id)': { finance_posting: 'SELECT' },
  'column core.workspaces(id)': { finance_posting: 'SELECT,UPDATE' }, // UPDATE: a posting key-share locks a line's workspace (20270205000100)
  'table core.webhook_endpoints': { authenticated: RW, service_role: RW },
  'table core.webhook_messages': { authenticated: 'INSERT,SELECT,UPDATE', service_role: RW },
  'table core.webhook_attempts': { authenticated: 'SELECT', service_role: 'DELETE,INSERT,SELECT' },
  // notifications (issue 18): a user reads and marks their own notices and sets their own preferences
  'table core.notifications': { authenticated: 'SELECT', service_role: RW },
  'column core.notifications(read_at)': { authenticated: 'UPDATE' },
  'column core.notifications(archived_at)': { authenticated: 'UPDATE' },
  'table core.notification_preferences': { authenticated: RW, service_role: RW },
  'table core.notification_routes': { service_role: 'SELECT' },
  'table core.email_deliveries': { service_role: RW },
  'table core.email_digests': { service_role: RW },
  'table core.notification_event_receipts': { service_role: RW },
  'table core.known_devices': { service_role: RW },
  'table core.password_reset_tokens': { service_role: RW },
  'table core.email_change_requests': { service_role: RW },
  'table core.erasure_prepasses': { service_role: RW },
  // privacy (issue 20): exports (owners start and read their organization's), per-person audit keys (functions only)
  // an owner's request inserts only what it asks for; status, file and expiry are the job's (20270205000500)
  'table core.data_exports': { authenticated: 'SELECT', service_role: RW },
  'column core.data_exports(kind)': { authenticated: 'INSERT' },
  'column core.data_exports(org_id)': { authenticated: 'INSERT' },
  'column core.data_exports(user_id)': { authenticated: 'INSERT' },
  'table core.personal_data_keys': { service_role: 'DELETE,INSERT,SELECT' },
  'column core.personal_data_keys(wrapped)': { service_role: 'UPDATE' },

  'table hub."App"': { authenticated: 'SELECT', service_role: RW },
  'table hub."BillingEvent"': { authenticated: 'SELECT', service_role: RW },
  'table hub."Subscription"': { authenticated: 'SELECT', service_role: RW },
  'table hub.features': { authenticated: 'SELECT', service_role: RW },
  'table hub.limit_locks': { authenticated: 'INSERT,SELECT,UPDATE', service_role: RW },
  'table hub.plan_features': { authenticated: 'SELECT', service_role: RW },
  'table hub.plans': { authenticated: 'SELECT', service_role: RW },
  'table hub.subscription_billing': { authenticated: 'SELECT', service_role: RW },
  'table hub.trial_notices': { service_role: 'DELETE,INSERT,SELECT' },

  'table finance.account_balances': { authenticated: 'SELECT', finance_posting: 'INSERT,SELECT,UPDATE', service_role: 'SELECT' },
  'table finance.accounts': { authenticated: 'INSERT,SELECT,UPDATE', finance_posting: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'INSERT,SELECT,UPDATE' },
  'table finance.currencies': { authenticated: 'SELECT', finance_posting: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'table finance.fiscal_periods': { authenticated: 'INSERT,SELECT,UPDATE', finance_posting: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'INSERT,SELECT,UPDATE' },
  // analysts read only what the security_invoker semantic views read (20270211003800)
  'table finance.fiscal_years': { authenticated: 'INSERT,SELECT,UPDATE', service_role: 'INSERT,SELECT,UPDATE' },
  'table finance.fx_rates': { authenticated: 'INSERT,SELECT,UPDATE', finance_posting: 'SELECT', service_role: 'INSERT,SELECT,UPDATE' },
  'table finance.journal_entries': { authenticated: 'SELECT', finance_posting: 'INSERT,SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'table finance.journal_lines': { authenticated: 'SELECT', finance_posting: 'INSERT,SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'table finance.period_balances': { authenticated: 'SELECT', finance_posting: 'INSERT,SELECT,UPDATE', service_role: 'SELECT' },
  'table finance.settings': { authenticated: 'INSERT,SELECT,UPDATE', finance_posting: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'INSERT,SELECT,UPDATE' },
  'table finance.tax_codes': { authenticated: 'INSERT,SELECT,UPDATE', finance_posting: 'SELECT', service_role: 'INSERT,SELECT,UPDATE' },
  // payables (20261221000100): drafts written under policies; decisions, payments and allocations append-only
  'table finance.vendors': { authenticated: 'INSERT,SELECT,UPDATE', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'table finance.payables_settings': { authenticated: 'INSERT,SELECT,UPDATE', service_role: 'SELECT' },
  'table finance.bills': { authenticated: 'INSERT,SELECT,UPDATE', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'table finance.bill_lines': { authenticated: 'DELETE,INSERT,SELECT', service_role: 'SELECT' },
  'table finance.bill_decisions': { authenticated: 'INSERT,SELECT', service_role: 'SELECT' },
  'table finance.bill_payments': { authenticated: 'INSERT,SELECT', service_role: 'SELECT' },
  'table finance.bill_payment_refunds': { authenticated: 'INSERT,SELECT', service_role: 'SELECT' },
  'table finance.bill_allocations': { authenticated: 'INSERT,SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },

  'view semantic.v_gl_fact': { authenticated: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'view semantic.v_agent_metrics': { authenticated: 'SELECT', service_role: 'SELECT' },

  // ai (agents, 20261222000100): the catalog is read-only reference data; runs are appended, steps never change
  'table ai.models': { authenticated: 'SELECT', service_role: 'SELECT' },
  'table ai.model_prices': { authenticated: 'SELECT', service_role: 'SELECT' },
  'table ai.provider_keys': { authenticated: RW, service_role: RW },
  'table ai.agents': { authenticated: RW, service_role: RW },
  'table ai.runs': { authenticated: 'INSERT,SELECT,UPDATE', service_role: 'INSERT,SELECT,UPDATE' },
  // embedding calls' usage (20270211003400): appended by the metering service, read under RLS
  'table ai.embedding_usage': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  'table ai.run_steps': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  'column ai.run_steps(detail)': { service_role: 'UPDATE' }, // a person's erasure clears the steps of their runs (20270210040100)
  'column ai.run_steps(error_message)': { service_role: 'UPDATE' }, // and their error messages (20270210120100)
  'table ai.budgets': { authenticated: RW, service_role: RW },
  'table ai.budget_usage': { authenticated: RW, service_role: RW },
  'table ai.budget_reservations': { authenticated: RW, service_role: RW },
  'table ai.agent_triggers': { authenticated: RW, service_role: RW },
  'table ai.trigger_firings': { authenticated: 'INSERT,SELECT', service_role: 'SELECT' },
  'view semantic.v_ap_open': { authenticated: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  // receivables (20261220000100): issued documents, payments and allocations are append-only (triggers; no UPDATE/DELETE grant on the latter)
  'table finance.receivables_settings': { authenticated: 'INSERT,SELECT,UPDATE', service_role: 'INSERT,SELECT,UPDATE' },
  'table finance.customers': { authenticated: 'INSERT,SELECT,UPDATE', service_role: 'INSERT,SELECT,UPDATE' },
  // analysts see a customer's id, name and terms, never its contact fields (personal data)
  'column finance.customers(org_id)': { omnizen_analyst: 'SELECT' },
  'column finance.customers(id)': { omnizen_analyst: 'SELECT' },
  'column finance.customers(name)': { omnizen_analyst: 'SELECT' },
  'column finance.customers(default_currency)': { omnizen_analyst: 'SELECT' },
  'column finance.customers(payment_terms_days)': { omnizen_analyst: 'SELECT' },
  'column finance.customers(archived_at)': { omnizen_analyst: 'SELECT' },
  'table finance.document_numbers': { authenticated: 'INSERT,SELECT,UPDATE', service_role: 'INSERT,SELECT,UPDATE' },
  'table finance.invoices': { authenticated: RW, omnizen_analyst: 'SELECT', service_role: RW },
  'table finance.invoice_lines': { authenticated: RW, service_role: RW },
  'table finance.customer_payments': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  'table finance.customer_refunds': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  'table finance.receivable_allocations': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  // the open amount per document (20270113000100): written by triggers only (SECURITY DEFINER), read like the allocations
  'table finance.receivable_open_amounts': { authenticated: 'SELECT', service_role: 'SELECT' },
  'table finance.payable_open_amounts': { authenticated: 'SELECT', service_role: 'SELECT' },
  // what each FX revaluation changed of each open receivable or payable (20270208010100): written with the revaluation entry
  'table finance.fx_revaluation_items': { authenticated: 'INSERT,SELECT', omnizen_analyst: 'SELECT', service_role: 'INSERT,SELECT' },
  // the allocations' and the refunds' posting_seq default draws from it (20270210700100, 20270210750100): their order among the revaluation rows
  'sequence finance.fx_revaluation_items_seq_seq': { authenticated: 'USAGE', service_role: 'USAGE' },
  // invoices the daily job found overdue (20270201000400): noted by a service principal in the tenant transaction
  'table finance.invoice_overdue_notices': { authenticated: 'INSERT,SELECT', service_role: 'SELECT' },
  'table finance.revenue_recognition_runs': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  'table finance.revenue_recognitions': { authenticated: 'INSERT,SELECT', service_role: 'INSERT,SELECT' },
  // aging grouped per party and bucket in one pass (20270103000100), the organization fixed by auth_org_id()
  'function finance.ar_aging(date, integer[])': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  // the as-of pass by bucket position and the report's rows per customer with its totals row (20270111000100)
  'function finance.ar_aging_index(date, integer[])': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.ar_aging_parties(date, integer[], integer)': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  // one page of it: the customers after a cursor with their buckets, and the totals over all (20270113000200)
  'function finance.ar_aging_page(date, integer[], integer, text, uuid, integer)': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.ap_aging(date, integer[])': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.ar_open_items(date)': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  'view semantic.v_ar_open': { authenticated: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'view semantic.v_revenue_by_customer': { authenticated: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  'view semantic.v_cash_flow': { authenticated: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  // the cash-flow split of each entry (20270210630200): read by the report (authenticated) and by semantic.v_cash_flow
  'view finance.cash_flow_split': { authenticated: 'SELECT', omnizen_analyst: 'SELECT', service_role: 'SELECT' },
  // the same over a range, which the view reads over open bounds (20270210710100): the report reads a month's lines only
  'function finance.cash_flow_split_between(date, date)': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },

  'table public.integration_secrets': { authenticated: RW, service_role: RW },
  'table public.integrations': { authenticated: RW, service_role: RW },
  'table public.providers': { authenticated: RW, service_role: RW },

  // request helpers: the policies call them as the querying role
  'function public.auth_has_role(text[])': HELPER_CALLERS,
  'function public.auth_org_id()': HELPER_CALLERS,
  'function public.auth_role()': HELPER_CALLERS,
  'function public.auth_user_id()': HELPER_CALLERS,
  'function public.auth_workspace_id()': HELPER_CALLERS,
  // the full checks behind auth_org_id() and auth_role(), and whether begin_request's verification still holds
  'function public.auth_org_id_checked()': HELPER_CALLERS,
  'function public.auth_role_checked()': HELPER_CALLERS,
  'function public.auth_claims_verified()': HELPER_CALLERS,
  // begin_request's decision of both (20270115000100), run as the request's role
  'function public.auth_org_role_checked()': { anon: 'EXECUTE', authenticated: 'EXECUTE' },
  'function core.request_claims()': HELPER_CALLERS,
  'function core.is_member(uuid)': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE' },
  // transaction locks on core.lock_rows (no grants): the request roles and the posting checks, never an analyst (20270211003700)
  'function core.xact_lock(text)': { authenticated: 'EXECUTE', finance_posting: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.xact_lock_shared(text)': { authenticated: 'EXECUTE', finance_posting: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.try_xact_lock(text)': { authenticated: 'EXECUTE', finance_posting: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.shares_org_with(text)': { authenticated: 'EXECUTE' },
  'function core.member_of_service_org(text)': { authenticated: 'EXECUTE' },
  // begin_request sets a request's claims and role: the API's runtime login only
  'function public.begin_request(text, text)': { omnizen_api: 'EXECUTE' },
  'function core.accept_invitation(uuid, text, text)': { authenticated: 'EXECUTE' },
  // the invitation e-mails' hourly counts, across organizations for the address: the API only (20270210410200)
  'function core.invitations_within_hour(text)': { authenticated: 'EXECUTE' },
  // the mailbox those counts fold an address to (20270210500200): its index's expression, run by the roles writing invitations
  'function core.invitation_mailbox(text)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.create_organization(text, text)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.personal_org_id(text)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // writes auth.users (Supabase Auth's table) for the privileged registration path
  'function core.sync_auth_user(uuid, text)': { service_role: 'EXECUTE' },
  'function core.erase_auth_user(uuid, text)': { service_role: 'EXECUTE' },
  // what a link mailed to an account's address proves (20270210830100): the privileged auth path; accept_invitation as its owner
  'function core.prove_user_email(text)': { service_role: 'EXECUTE' },
  // whether an address is another account's for a user (20270211001000): identity links and sign-ins, erasure and export (privileged paths)
  'function core.email_of_another_account(text, text)': { service_role: 'EXECUTE' },
  // the claim of a pre-registered account revokes its keys (20270210160100); its membership trigger needs no grant
  'function core.revoke_api_keys_of_creator(text, uuid, text, text, text)': { service_role: 'EXECUTE' },
  // the four-eyes checks read who created a key in the API's tenant transactions (20270211000500; REST callers get nothing)
  'function core.api_key_creators(uuid[])': { authenticated: 'EXECUTE' },
  // called by the webhook endpoints' insert and update trigger, which runs as its caller (20270211000400): the API's verified requests only
  'function core.webhook_endpoint_configurer(uuid)': { authenticated: 'EXECUTE' },
  // the same trigger reads, under lock, whether an endpoint's two answerable people are still owner or admin, and the
  // API locks them before the endpoint (20270211000400): the verified requests of the organization only
  'function core.webhook_endpoint_person_answers(uuid, text)': { authenticated: 'EXECUTE' },
  // the API's tenant transactions and privileged paths only: the functions refuse other callers (20270202000200)
  'function core.personal_data_key(uuid, text, jsonb)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.personal_data_keys_by_id(uuid[])': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function core.shred_party_key(text, uuid)': { authenticated: 'EXECUTE' },
  'function hub.personal_org_id(text)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function hub.seat_usage()': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.account_totals(date, date, uuid)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.effective_rate(text, date)': { authenticated: 'EXECUTE', finance_posting: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.entry_json(uuid)': { authenticated: 'EXECUTE', finance_posting: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.post_journal_entry(jsonb, jsonb)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.post_journal_entries(jsonb, jsonb, boolean)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // the organization the posting function verified, read by the posting role's policies (20261204000200)
  'function finance.posting_org()': { finance_posting: 'EXECUTE' },
  // finance.post_entry(jsonb, jsonb, boolean), the posting itself, is called only by the two above (as its owner)
  // budget reservation and settlement, as the runner (RLS applies)
  'function ai.reserve_budget(uuid, uuid, numeric, bigint, timestamp with time zone, timestamp with time zone)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function ai.extend_reservation(uuid, uuid, numeric, bigint, timestamp with time zone, timestamp with time zone)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function ai.extend_reservation(uuid, uuid, numeric, bigint, numeric, bigint, timestamp with time zone, timestamp with time zone)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function ai.settle_budget(uuid, numeric, bigint, uuid, timestamp with time zone)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // whether the caller may read a run (the runs' policy decides): run_steps' policies (20270205001000)
  'function ai.run_readable(uuid, uuid)': { authenticated: 'EXECUTE' },
  // whether the caller may read a bill / bill payment (their own policies decide): a member's restrictive read policies (20270206000100)
  'function finance.bill_readable(uuid, uuid)': { authenticated: 'EXECUTE' },
  'function finance.bill_payment_readable(uuid, uuid)': { authenticated: 'EXECUTE' },
  // whether payables' first posting without settings is still to come, whatever the caller may read (20270211003300)
  'function finance.payables_first_posting_pending()': { authenticated: 'EXECUTE' },
  // the aging bucket rule shared by AR and AP (semantic.v_ap_open calls it as the querying role)
  'function finance.aging_bucket(integer, integer[])': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  'function finance.aging_bucket_label(integer, integer[])': { authenticated: 'EXECUTE', omnizen_analyst: 'EXECUTE', service_role: 'EXECUTE' },
  // finance.check_entry, finance.write_entries and finance.posting_accounts, the posting's parts, are called only by the two above (as their owner)
  'function public.public_provider_profile(text)': { anon: 'EXECUTE', authenticated: 'EXECUTE', service_role: 'EXECUTE' },

  // issue 19: API keys (20261228000100). Owners and admins read and create keys column by column: the secret's hash
  // is written once and never selectable; a revocation changes only revoked_at / revoked_by.
  'table core.api_keys': { service_role: RW },
  'column core.api_keys(org_id)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(id)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(name)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(prefix)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(secret_hash)': { authenticated: 'INSERT' },
  'column core.api_keys(scopes)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(created_by)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(created_at)': { authenticated: 'SELECT' },
  'column core.api_keys(expires_at)': { authenticated: 'INSERT,SELECT' },
  'column core.api_keys(last_used_at)': { authenticated: 'SELECT' },
  'column core.api_keys(revoked_at)': { authenticated: 'SELECT,UPDATE' },
  'column core.api_keys(revoked_by)': { authenticated: 'SELECT,UPDATE' },
  // a keyed request's transaction and its verification: the API's runtime login only, like begin_request
  'function public.begin_key_request(uuid, text, uuid, text)': { omnizen_api: 'EXECUTE' },
  'function public.verify_api_key(uuid, text, uuid)': { omnizen_api: 'EXECUTE' },
  'function public.auth_api_key_id()': HELPER_CALLERS,
  // the full check behind auth_api_key_id() (20270211000600), as auth_org_id_checked() behind auth_org_id()
  'function public.auth_api_key_id_checked()': HELPER_CALLERS,
  'function public.auth_has_scope(text)': HELPER_CALLERS,
  // rate limits: the override is set by operators (service_role), read by the organization's members
  'table hub.rate_limit_overrides': { authenticated: 'SELECT', service_role: RW },
  'function hub.request_rate_limit(text)': { authenticated: 'EXECUTE' },
  // analytics (20261228000200): events sent by members, read by admins; roll-ups and partitions by the privileged job.
  // The monthly partitions hold no grants at all (reached through the parent only), so they are absent here.
  'table core.analytics_events': { authenticated: 'INSERT,SELECT', service_role: 'DELETE,INSERT,SELECT,UPDATE' },
  'table core.analytics_daily': { authenticated: 'SELECT', service_role: RW },
  // who was active per organization and day (20270210940100): the roll-up job writes it, the gauge reads it, retention and erasure delete
  'table core.analytics_daily_users': { service_role: 'DELETE,INSERT,SELECT' },
  'function core.analytics_create_partitions(date, integer)': { service_role: 'EXECUTE' },
  'function core.analytics_drop_partitions(date)': { service_role: 'EXECUTE' },
  // the distinct event names of an organization's apps (20270205001100): added by the senders, pruned by the job
  'table core.analytics_event_names': { authenticated: 'INSERT,SELECT', service_role: 'DELETE,INSERT,SELECT' },
  // knowledge base (20261224000100_knowledge)
  'table ai.knowledge_collections': { authenticated: RW, service_role: RW },
  'table ai.knowledge_documents': { authenticated: RW, service_role: RW },
  'table ai.knowledge_versions': { authenticated: 'INSERT,SELECT', service_role: RW },
  'column ai.knowledge_versions(status)': { authenticated: 'UPDATE' },
  'column ai.knowledge_versions(status_reason)': { authenticated: 'UPDATE' },
  'table ai.knowledge_chunks': { authenticated: 'SELECT', service_role: 'DELETE,INSERT,SELECT' },
  'sequence ai.knowledge_chunks_id_seq': { service_role: 'USAGE' },
  'function ai.dot_product(real[], real[])': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function ai.embedding_storage()': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  'function ai.readable_collections()': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // the lookup ai.readable_collections() falls back to, recording it for the statement (20270208060100)
  'function ai.readable_collections_checked()': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // the organization's documents and text bytes, for the plan's limits of the knowledge base (20270208060200)
  'function ai.knowledge_usage()': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // the counters ai.knowledge_usage() reads, kept by triggers (20270208140100)
  'table ai.knowledge_usage_counters': { authenticated: 'SELECT', service_role: 'SELECT' },
  // a writer's lock of the collection's row, before its document's (20270208100100)
  'function ai.lock_knowledge_collection(uuid)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
  // the organizations a user belongs to, for core.notifications' policy (20270207900100)
  'function core.member_org_ids()': { authenticated: 'EXECUTE' },
  'function core.member_org_ids_checked()': { authenticated: 'EXECUTE' },
  'function ai.knowledge_text_matches(text, uuid[], uuid[], text[], timestamp with time zone, timestamp with time zone, integer)': { authenticated: 'EXECUTE', service_role: 'EXECUTE' },
};

/** Differences as readable lines: what a role holds beyond the allow-list, or lacks from it. */
export function privilegeDifferences(held: Record<string, Record<string, string>>, allowed = PRIVILEGES_ALLOWED): string[] {
  const lines: string[] = [];
  for (const object of new Set([...Object.keys(held), ...Object.keys(allowed)])) {
    for (const role of new Set([...Object.keys(held[object] ?? {}), ...Object.keys(allowed[object] ?? {})])) {
      const has = new Set((held[object]?.[role] ?? '').split(',').filter(Boolean));
      const may = new Set((allowed[object]?.[role] ?? '').split(',').filter(Boolean));
      const extra = [...has].filter((p) => !may.has(p));
      const missing = [...may].filter((p) => !has.has(p));
      if (extra.length) lines.push(`${object}: ${role} holds ${extra.join(',')} (not in the allow-list)`);
      if (missing.length) lines.push(`${object}: ${role} lacks ${missing.join(',')} (the allow-list grants it)`);
    }
  }
  return lines.sort();
}
