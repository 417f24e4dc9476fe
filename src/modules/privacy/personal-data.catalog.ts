/**
 * The catalog of personal data: every column in our schemas that can hold data about a natural person,
 * declared once. Erasure, export and the checks in test/privacy are driven by it, so a module that adds a
 * table with e-mail-, name-, phone- or address-like columns fails test/privacy/catalog.test.ts until it
 * declares them here (or lists them as not personal, with the reason).
 *
 * Identifiers below are code constants, never input: the erasure builds its statements from them.
 */

/** How to find the person a row belongs to. */
export type PersonLocator =
  /**
   * `column` holds the person's user id (text; `uuid`: a column of type uuid, compared as one so that its index serves the
   * lookup, not cast to text, which no index serves: test/privacy/catalog.test.ts checks the flag against the column's type,
   * test/privacy/locator-indexes.test.ts that an index serves it); `only`: in the rows whose `only.column` is one of
   * `only.values`
   */
  | { kind: 'user'; column: string; uuid?: true; only?: { column: string; values: readonly string[] } }
  /** `column` holds the person's e-mail address (e.g. an invitation sent to it) */
  | { kind: 'email'; column: string }
  /** the row is the person's personal organization: owner column + account_type = 'personal' */
  | { kind: 'personal-org'; column: string }
  /**
   * `column` holds an organization that goes with the person (LocatedPerson.erasedOrgIds: their personal one, and the
   * business ones nobody else belongs to, organizationsErasedWith): the erasure deletes those organizations, and the rows
   * of theirs that the catalog names this way with them; the person's export holds them beforehand
   */
  | { kind: 'erased-org'; column: string }
  /** the row is a party (vendor, customer) an organization may erase as a natural person */
  | { kind: 'party'; party: string; orgColumn: string; idColumn: string }
  /**
   * the row belongs to a row of `table` (another table of the catalog), and is the person's when that row is: `columns`
   * pairs this table's columns with that table's (a run's steps, a claim's lines)
   */
  | { kind: 'through'; table: string; columns: readonly (readonly [string, string])[] }
  /**
   * an audit entry of `entityTypes` sealed with the key of one of the person's proven addresses (an invitation to it:
   * audit-sealing names its invitee by the e-mail's hash, AUDITED_PERSONAL_DATA), found by the snapshot's key id
   */
  | { kind: 'sealed-for-email'; entityTypes: readonly string[] }
  /**
   * the row names nobody in particular: its value may mention a person (JSON payloads). As the erasure's locator, the
   * rows whose erased, pseudonymized or deleted columns name one of the person's proven addresses (as a whole) are
   * theirs; `userId`: also those whose `userId` key holds their id (an event about them: a sign-in from a new device
   * carries its user agent and network along with it; not an event where they only acted, e.g. invitedBy). `orgColumn`:
   * only the rows of the person's organizations (LocatedPerson.orgIds, which erasure and export then give), in the erasure
   * and the export alike: a row of an organization they never knew that names their address is that organization's record.
   * `only`: in the rows whose `only.column` is one of `only.values` (catalog constants, written into the statement as
   * literals so that a partial index on them serves it, in any plan)
   */
  | { kind: 'value-scan'; userId?: true; orgColumn?: string; only?: { column: string; values: readonly string[] } };

export type Treatment =
  /** set to NULL */
  | { kind: 'erase' }
  /**
   * replaced by a non-identifying value; `sql` is an SQL expression over the row (`id` etc.), in which `:person` is the
   * erased person's user id (text) and `:addresses` the value scan's pattern of their proven addresses (text, for `~*`: any
   * of them as a whole address, valueScanPattern; NULL when they have none), bound as parameters: for a row located by its
   * content, whose column may name someone else; `:pseudonym` is the erasure's one random pseudonym (`erased-<uuid>`, text),
   * the same in every transaction of it (its walk's batches, erasureRepository.eraseAnalyticsBatch, then its own)
   */
  | { kind: 'pseudonymize'; sql: string }
  /** the whole row is deleted with the person */
  | { kind: 'delete-row' }
  /** kept: the legal basis and how long (the retention job purges it afterwards, docs/privacy.md) */
  | { kind: 'retain'; basis: string; duration: string }
  /** looks personal by its name but is not */
  | { kind: 'not-personal'; reason: string }
  /**
   * an append-only row: the personal fields are sealed with the person's key when written, and the erasure deletes
   * the key (crypto-shredding, privacy/audit-sealing.ts); the row itself is never updated
   */
  | { kind: 'crypto-shred'; how: string };

export interface PersonalDataTable {
  /** schema-qualified, quoted as needed: `core."User"` */
  table: string;
  person: PersonLocator;
  /**
   * More rows the erasure treats as the person's (any of them matches): an e-mail sent to their address before they had
   * an account, another member's notice naming them. Not in their export: those rows are someone else's record.
   */
  alsoErasedBy?: PersonLocator[];
  /** More rows that are the person's own (any of them matches), in their export and their erasure: audit entries about them. */
  alsoLocatedBy?: PersonLocator[];
  /**
   * More rows in the person's export that their erasure leaves (any of the locators matches): what they wrote into an
   * organization that goes on without them (a knowledge document they added), kept as the organization's record on
   * `basis` for `duration` (docs/privacy.md, Retention).
   */
  alsoExportedBy?: { locators: PersonLocator[]; basis: string; duration: string };
  /**
   * The column of the row's organization, when every row the erasure takes from this table is in an organization the
   * person is or was a member of, or one that invited one of their proven addresses (LocatedPerson.orgIds): the erasure
   * then looks only there, by an index leading on it, not through every organization's rows. Not for the transport
   * tables: their rows found by user id or e-mail column (a mail to their address) may be of any organization; their
   * value scans are bounded by the locator's own orgColumn instead.
   */
  orgColumn?: string;
  columns: Record<string, Treatment>;
  /** what an export's README says this table holds */
  describes: string;
  /** false: never in a person's export (secrets, hashes), `describes` says why */
  exported?: false;
}

const DELETE: Treatment = { kind: 'delete-row' };
/** Why a knowledge document (and version) a person added stays in an organization that goes on after their erasure. */
const KNOWLEDGE_KEPT = {
  basis: 'the organization\'s knowledge base, which its members search and its agents answer from; the organization decides what it holds (GDPR Art. 6(1)(f))',
  duration: 'until the organization deletes the document or its collection (DELETE /v1/orgs/{orgId}/knowledge/documents/{id}, .../knowledge/collections/{id})',
};
const ERASE: Treatment = { kind: 'erase' };
const notPersonal = (reason: string): Treatment => ({ kind: 'not-personal', reason });

export const PERSONAL_DATA_CATALOG: PersonalDataTable[] = [
  {
    table: 'core."User"', person: { kind: 'user', column: 'id' }, describes: 'your profile',
    columns: {
      // the row stays (other apps reference its id); the e-mail stays unique and undeliverable
      email: { kind: 'pseudonymize', sql: `'erased+' || id || '@invalid'` },
      name: ERASE,
      image: ERASE,
    },
  },
  {
    table: 'core.user_credentials', person: { kind: 'user', column: 'user_id' }, describes: 'never exported (your password hash)', exported: false,
    columns: { password_hash: DELETE },
  },
  {
    table: 'core.user_identities', person: { kind: 'user', column: 'user_id' }, describes: 'the identities you sign in with',
    columns: { email: DELETE, subject: DELETE },
  },
  {
    table: 'core.email_verification_tokens', person: { kind: 'user', column: 'user_id' }, describes: 'e-mail verification links sent to you',
    columns: { email: DELETE },
  },
  {
    // a reset link still unused would set a password on the erased account (and a verified identity for its pseudonym)
    table: 'core.password_reset_tokens', person: { kind: 'user', column: 'user_id' }, describes: 'never exported (password reset link hashes)', exported: false,
    columns: { token_hash: DELETE },
  },
  {
    table: 'core.invitations', person: { kind: 'email', column: 'email' }, describes: 'invitations sent to your e-mail',
    columns: { email: DELETE },
  },
  {
    table: 'core.sessions', person: { kind: 'user', column: 'user_id' }, describes: 'your sign-in sessions',
    // revoked by the erasure first; the device facts go now, the row with the retention job
    columns: { ip: ERASE, user_agent: ERASE },
  },
  {
    table: 'core.organizations', person: { kind: 'personal-org', column: 'owner_user_id' }, describes: 'your personal organization',
    columns: {
      // the personal organization is named after its person at registration
      name: { kind: 'pseudonymize', sql: `'Erased personal organization'` },
      domain: ERASE,
    },
  },
  {
    // also the entries about them (their account, their memberships: a role an admin changed), whoever acted; in their
    // export another actor's ip is withheld
    // and those about invitations to their proven addresses. Each lookup has an index (migration 20270210090100): the
    // log is read across organizations, which lead its other indexes
    table: 'core.audit_logs', person: { kind: 'user', column: 'actor_id' },
    alsoLocatedBy: [
      { kind: 'user', column: 'entity_id', only: { column: 'entity_type', values: ['user', 'membership'] } },
      { kind: 'sealed-for-email', entityTypes: ['invitation'] },
    ],
    describes: 'audit entries where you are the actor, and those about your account, your memberships and invitations to your e-mail (another actor\'s IP address withheld)',
    columns: {
      // in the clear, never sealed: kept as long as the audit log itself, which is append-only and not purged (docs/privacy.md)
      ip: {
        kind: 'retain', basis: 'security and accountability of an append-only audit trail (GDPR Art. 6(1)(f), 5(2))',
        duration: 'as long as the audit log (not purged yet: an open decision, docs/privacy.md)',
      },
      before: { kind: 'crypto-shred', how: 'personal fields sealed with the person\'s key (core.personal_data_keys); erasure deletes the key' },
      after: { kind: 'crypto-shred', how: 'personal fields sealed with the person\'s key (core.personal_data_keys); erasure deletes the key' },
    },
  },
  {
    // a delivered job's payload may name an invitee's e-mail, or a person by user id (session.started_from_unknown_device:
    // with the device's user agent and network): such rows go with the person. Looked for in their organizations only
    // (orgColumn; LocatedPerson.orgIds: their personal one, those they are or were in, those that invited them): a job is
    // written in the organization it is about, and the outbox, millions of rows, is read by its primary key (org_id, id)
    // there, not scanned whole (at volume past the statement timeout)
    table: 'core.outbox', person: { kind: 'value-scan', userId: true, orgColumn: 'org_id' }, describes: 'jobs',
    columns: { payload: DELETE },
  },
  {
    // a webhook message's body is a domain event (member.invited, member.joined name the e-mail; member.* about them and
    // sign-ins from a new device name their user id as `userId`): those go with the person, with their attempts;
    // replaying one would send it again. In their organizations only (orgColumn), as the outbox whose events they carry
    table: 'core.webhook_messages', person: { kind: 'value-scan', userId: true, orgColumn: 'org_id' }, describes: 'webhook messages naming you',
    columns: { body: DELETE },
  },
  {
    // also the notices of other members that name the person's e-mail (an invitation to it, a role change): of their
    // organizations (orgColumn), whose members get them
    table: 'core.notifications', person: { kind: 'user', column: 'user_id' }, alsoErasedBy: [{ kind: 'value-scan', orgColumn: 'org_id' }],
    describes: 'your in-app notifications',
    columns: { title: DELETE, body: DELETE },
  },
  {
    // also e-mails to their address that name no user (sent before they had an account: an invitation), and e-mails to
    // others that name their address or user id. An invitation mail they sent keeps going to its invitee without
    // their name (data.inviterName cleared first: erasureRepository.clearInviterNames). A mail to their address is found
    // in any organization (an index on lower(to_address), migration 20270210970100: another account's change of e-mail to
    // it is mailed from that account's personal organization); those naming them in their data in their organizations
    // only (orgColumn), as the outbox's jobs that queued them. But a digest (template 'digest') gathers its recipient's
    // notices of every organization into one row stored under the first one's (EmailDeliveryService.flushDigests): one
    // naming them is found in any organization, by the partial index on the digests (email_deliveries_digest_mail_idx,
    // migration 20270210970100: one a user, category and hour at most, purged by retention), not every e-mail's data
    table: 'core.email_deliveries', person: { kind: 'user', column: 'user_id' },
    alsoErasedBy: [
      { kind: 'email', column: 'to_address' }, { kind: 'value-scan', userId: true, orgColumn: 'org_id' },
      { kind: 'value-scan', only: { column: 'template', values: ['digest'] } },
    ],
    describes: 'e-mails sent to you',
    columns: { to_address: DELETE, data: DELETE },
  },
  {
    table: 'core.email_change_requests', person: { kind: 'user', column: 'user_id' }, describes: 'your e-mail change requests',
    columns: { old_email: DELETE, new_email: DELETE },
  },
  {
    table: 'core.known_devices', person: { kind: 'user', column: 'user_id' }, describes: 'devices you signed in from (hashed)',
    columns: { device_hash: DELETE },
  },
  {
    table: 'public.integrations', person: { kind: 'user', column: 'user_id', uuid: true }, describes: 'your calendar and other integrations (no secrets)',
    columns: { external_email: DELETE, external_username: DELETE },
  },
  {
    table: 'public.integration_secrets', person: { kind: 'user', column: 'user_id', uuid: true }, describes: 'never exported (sealed secrets)', exported: false,
    columns: { secret: DELETE },
  },
  {
    table: 'public.providers', person: { kind: 'user', column: 'owner_user_id', uuid: true }, describes: 'your public provider page',
    columns: { public_slug: DELETE, settings: DELETE },
  },
  {
    table: 'finance.vendors', person: { kind: 'party', party: 'vendor', orgColumn: 'org_id', idColumn: 'id' }, describes: 'vendors',
    columns: {
      name: { kind: 'pseudonymize', sql: `'Erased vendor ' || left(id::text, 8)` },
      contact_person: ERASE,
      email: ERASE,
      phone: ERASE,
      billing_address: ERASE,
      tax_id: ERASE,
    },
  },
  {
    table: 'finance.customers', person: { kind: 'party', party: 'customer', orgColumn: 'org_id', idColumn: 'id' }, describes: 'customers',
    columns: {
      name: { kind: 'pseudonymize', sql: `'Erased customer ' || left(id::text, 8)` },
      contact_person: ERASE,
      email: ERASE,
      phone: ERASE,
      billing_address: ERASE,
      tax_id: ERASE,
    },
  },
  {
    // also the events of their organizations whose ids or properties name one of their proven addresses: an app's event
    // sent with an anonymous id only (user_id NULL, whoever sent it: a member's app relays visitors too) or under
    // another user id carries whatever free text the app put in its properties, the person's e-mail among them. Only in
    // their organizations (the value scan's orgColumn), as ai.runs: another organization's event naming their address is
    // its record
    table: 'core.analytics_events', person: { kind: 'user', column: 'user_id' }, alsoLocatedBy: [{ kind: 'value-scan', orgColumn: 'org_id' }],
    describes: 'product analytics events about you, and those of your organizations that name your e-mail',
    // pseudonymized, not deleted: the organization's aggregates stay. One random id for all the person's rows, drawn once
    // per erasure (:pseudonym, kept with its walk in core.erasure_prepasses: its batches and its transaction write the same
    // one): their events stay one user in the distinct counts (active users, the roll-ups' users), and the id links
    // them to nobody. A fresh id per row would count one erased person with N events on a day as N users. An event found
    // by its content keeps its user id (NULL, or another user's: their counts stay theirs) unless it names one of their
    // addresses, as the value scan that found it matches them (`mailto:<e-mail>`, `crm:<E-MAIL> `): then it is theirs
    columns: {
      user_id: { kind: 'pseudonymize', sql: `CASE WHEN user_id = :person OR user_id ~* :addresses THEN :pseudonym ELSE user_id END` },
      anonymous_id: ERASE,
      properties: { kind: 'pseudonymize', sql: `'{}'::jsonb` },
      name: notPersonal('the event name'),
    },
  },
  {
    // who was active per organization and day (the active-users gauge's source, written by the analytics roll-up from the
    // events above): located as those events are. Deleted, not pseudonymized: the next roll-up of each day writes the
    // pseudonym their events then carry (the nightly one recomputes every day the gauge reads), which one pseudonym per
    // row here could not (their id and an address they were sent under on the same day would become one key twice)
    table: 'core.analytics_daily_users', person: { kind: 'user', column: 'user_id' }, alsoLocatedBy: [{ kind: 'value-scan', orgColumn: 'org_id' }],
    describes: 'the days you were active in an organization, by your product analytics events',
    columns: { user_id: DELETE },
  },
  {
    // their erasure in progress (its walk of the analytics events above, resumable): the ids their events went to PostHog
    // under (an anonymous id, `mailto:<e-mail>`), read before a batch cleared them, and the addresses it searches for.
    // Gone with the erasure's transaction; one an erasure refused after its walk left, with the retention job after a week
    table: 'core.erasure_prepasses', person: { kind: 'user', column: 'user_id' }, exported: false,
    describes: 'never exported (an erasure in progress: where its walk of your analytics events is)',
    columns: { posthog_ids: DELETE, pseudonym: DELETE, emails: DELETE },
  },
  {
    // the events of subscriptions in their name, and those about their personal organization (its personal plans)
    table: 'hub."BillingEvent"', person: { kind: 'through', table: 'hub."Subscription"', columns: [['subscriptionId', 'id']] },
    alsoLocatedBy: [{ kind: 'through', table: 'core.organizations', columns: [['orgId', 'id']] }],
    describes: 'Stripe events of your subscriptions and of your personal organization',
    columns: { payload: { kind: 'retain', basis: 'billing records under bookkeeping law', duration: '10 years' } },
  },
  {
    // the Stripe parameters of a checkout whose create Stripe never answered (customer_email: the requesting admin's
    // address): kept so the next checkout can learn that session from Stripe and expire it before creating its own (only
    // one payable), and only within Stripe's idempotency window; BillingExpiryJob.dropStaleCheckoutKeys clears them after
    table: 'hub.limit_locks', person: { kind: 'value-scan' }, describes: 'never exported (a pending Stripe checkout request)', exported: false,
    columns: {
      checkout_params: {
        kind: 'retain', basis: 'completing a checkout the person asked for: only one Stripe session of it may stay payable (GDPR Art. 6(1)(b))',
        duration: '24 hours after the checkout key was drawn (Stripe\'s idempotency window; cleared by the billing-expiry job, every 10 minutes)',
      },
    },
  },
  // rows about a person with no personal-looking column: exported (the person's own records), nothing to erase in them
  { table: 'core.memberships', person: { kind: 'user', column: 'user_id' }, describes: 'the organizations you belong to and your role', columns: {} },
  { table: 'core.notification_preferences', person: { kind: 'user', column: 'user_id' }, describes: 'your notification settings', columns: {} },
  { table: 'core.email_digests', person: { kind: 'user', column: 'user_id' }, describes: 'digest e-mails prepared for you', columns: {} },
  { table: 'core.data_exports', person: { kind: 'user', column: 'user_id' }, describes: 'the data exports you asked for', columns: { file_name: notPersonal('the export file, named by its id') } },
  {
    // also the runs that name the person's address (an event trigger pastes the event's payload, e.g. member.invited's
    // e-mail, into its run's input): the content goes, the run's tokens, cost and status stay (budgets, usage). Only in
    // their organizations (orgColumn): they started runs as a member, and an invitation names them in the organization
    // that sent it; a run of an organization they never knew that names their address is that organization's record.
    // The erasure cancels those still running first (erasureRepository.cancelRuns): their input '{}' marks them erased,
    // and a late LLM call's step stores no content (RunsService.storeCallStep). And every run of the organizations that go
    // with the person (erased-org), whoever started it (an API key, a trigger, a member who left): their prompts, answers
    // and retrieval steps quote the organization's knowledge base, which goes with it (its deletion stops them first,
    // RunsService.cancelRunsOfDeletedOrganization)
    table: 'ai.runs', person: { kind: 'user', column: 'started_by', uuid: true }, alsoErasedBy: [{ kind: 'value-scan' }, { kind: 'erased-org', column: 'org_id' }], orgColumn: 'org_id',
    describes: 'AI agent runs you started (your prompts and the answers)',
    // an error message may quote the input (a provider's refusal, a tool's error): its error class stays
    columns: { input: { kind: 'pseudonymize', sql: `'{}'::jsonb` }, output: ERASE, error_message: ERASE },
  },
  {
    // the steps of those runs (the model's answers, tool arguments and results, errors quoting them): erased with their
    // run, before it
    table: 'ai.run_steps', person: { kind: 'through', table: 'ai.runs', columns: [['org_id', 'org_id'], ['run_id', 'id']] }, orgColumn: 'org_id',
    describes: 'the steps of AI agent runs you started (model answers, tool calls)',
    columns: { name: notPersonal('a tool or step name'), detail: { kind: 'pseudonymize', sql: `'{}'::jsonb` }, error_message: ERASE },
  },
  // the knowledge base's embedding calls made for the person (their searches, the versions they added or re-indexed):
  // tokens and cost only, no text; they stay with the organization's budget and usage report, as their runs' counters do
  { table: 'ai.embedding_usage', person: { kind: 'user', column: 'user_id', uuid: true }, orgColumn: 'org_id', describes: 'the AI embedding calls of the knowledge base made for you (tokens and cost)', columns: {} },
  { table: 'finance.bills', person: { kind: 'user', column: 'claimant_id' }, describes: 'your expense claims (bills of kind expense_claim)', columns: {} },
  {
    table: 'finance.bill_lines', person: { kind: 'through', table: 'finance.bills', columns: [['org_id', 'org_id'], ['bill_id', 'id']] },
    describes: 'the lines of your expense claims', columns: {},
  },
  { table: 'finance.bill_payments', person: { kind: 'user', column: 'claimant_id' }, describes: 'reimbursements of your expense claims', columns: {} },
  { table: 'hub."Subscription"', person: { kind: 'user', column: 'userId' }, describes: 'app subscriptions in your name', columns: {} },
  { table: 'hub.subscription_billing', person: { kind: 'user', column: 'user_id' }, describes: 'billing state of subscriptions in your name', columns: {} },
  // names that look personal and are not
  { table: 'core.workspaces', person: { kind: 'value-scan' }, describes: 'workspaces', columns: { name: notPersonal('a workspace of an organization') } },
  { table: 'finance.accounts', person: { kind: 'value-scan' }, describes: 'chart of accounts', columns: { name: notPersonal('an account of the chart') } },
  { table: 'finance.currencies', person: { kind: 'value-scan' }, describes: 'currencies', columns: { name: notPersonal('ISO currency name') } },
  { table: 'finance.fiscal_years', person: { kind: 'value-scan' }, describes: 'fiscal years', columns: { name: notPersonal('a fiscal year label') } },
  { table: 'finance.tax_codes', person: { kind: 'value-scan' }, describes: 'tax codes', columns: { name: notPersonal('a tax code label') } },
  { table: 'hub."App"', person: { kind: 'value-scan' }, describes: 'apps', columns: { name: notPersonal('an app of the Hub') } },
  { table: 'core.api_keys', person: { kind: 'value-scan' }, describes: 'API keys', columns: { name: notPersonal('a label of an organization\'s API key') } },
  { table: 'ai.agents', person: { kind: 'value-scan' }, describes: 'agents', columns: { name: notPersonal('an agent of an organization') } },
  { table: 'ai.models', person: { kind: 'value-scan' }, describes: 'models', columns: { display_name: notPersonal('an LLM model name') } },
  { table: 'ai.knowledge_collections', person: { kind: 'value-scan' }, describes: 'knowledge collections', columns: { name: notPersonal('a collection of an organization\'s knowledge base') } },
  {
    // free text about anyone (a note of their health, a contract naming them): the knowledge base of an organization that
    // goes with the person (their personal one, a business one nobody else belongs to) goes with it, its versions and
    // chunks first; in an organization that goes on, what they added stays its record (alsoExportedBy)
    table: 'ai.knowledge_documents', person: { kind: 'erased-org', column: 'org_id' }, orgColumn: 'org_id',
    alsoExportedBy: { locators: [{ kind: 'user', column: 'created_by' }], ...KNOWLEDGE_KEPT },
    describes: 'knowledge base documents you added, and those of the organizations that go with your erasure (your personal one, those nobody else belongs to)',
    columns: { title: DELETE, source_url: DELETE, tags: DELETE },
  },
  {
    // the text of each version (what is chunked and searched), and its file's name: every version of the documents of the
    // organizations that go with the person; elsewhere only those they wrote (another member's version of a document they
    // added is that member's text: the `through` reaches no row by the document's alsoExportedBy)
    table: 'ai.knowledge_versions', person: { kind: 'through', table: 'ai.knowledge_documents', columns: [['org_id', 'org_id'], ['document_id', 'id']] },
    orgColumn: 'org_id', alsoExportedBy: { locators: [{ kind: 'user', column: 'created_by' }], ...KNOWLEDGE_KEPT },
    describes: 'the versions (their text) you wrote of knowledge documents, and every version of those of the organizations that go with your erasure',
    columns: { text: DELETE, filename: DELETE },
  },
  {
    // the versions' text cut in pieces, with its embedding: derived from the version's text (exported there)
    table: 'ai.knowledge_chunks', person: { kind: 'through', table: 'ai.knowledge_documents', columns: [['org_id', 'org_id'], ['document_id', 'id']] },
    orgColumn: 'org_id', exported: false, describes: 'never exported (the search index of the versions: their text in pieces, and its embeddings)',
    columns: { content: DELETE, tags: DELETE, embedding: DELETE },
  },
  { table: 'hub.plans', person: { kind: 'value-scan' }, describes: 'plans', columns: { name: notPersonal('a plan of an app') } },
  { table: 'core.analytics_event_names', person: { kind: 'value-scan' }, describes: 'event names', columns: { name: notPersonal('an event name an organization\'s apps send') } },
];

/**
 * Columns that name a person by user id but whose rows are the organization's records (authorship): not in the
 * person's export (the organization's export has them) unless their table's alsoExportedBy names the column; nothing
 * to erase. A column holding a user id that is neither a person locator of the catalog nor listed here fails
 * test/privacy/catalog.test.ts.
 */
export const AUTHORSHIP_COLUMNS: Record<string, string> = {
  'ai.agent_triggers.created_by': 'an organization\'s agent trigger you set up',
  'ai.agents.created_by': 'an organization\'s agent you created',
  'ai.knowledge_documents.created_by': 'an organization\'s knowledge document you added (in your export: the catalog\'s alsoExportedBy)',
  'ai.knowledge_versions.created_by': 'a version of an organization\'s knowledge document (in your export: the catalog\'s alsoExportedBy)',
  'ai.provider_keys.created_by': 'an organization\'s AI provider key',
  'core.api_keys.created_by': 'an organization\'s API key',
  'core.api_keys.revoked_by': 'an organization\'s API key',
  'core.webhook_endpoints.url_set_by': 'an organization\'s webhook endpoint whose URL you chose (created it or last re-pointed it, or enabled it taking it on)',
  'core.webhook_endpoints.secret_set_by': 'an organization\'s webhook endpoint whose current signing secret you received (created it or last rotated it, or enabled it taking it on)',
  'core.webhook_endpoints.previous_secret_set_by': 'an organization\'s webhook endpoint whose previous signing secret (still signing after a rotation) you received',
  'core.invitations.invited_by': 'an invitation you sent for an organization',
  'core.invitations.accepted_by': 'the invitation is exported by the e-mail it was sent to',
  'core.app_token_redemptions.user_id': 'single-use token bookkeeping, never exported',
  'core.legacy_hub_accounts.user_id': 'upgrade bookkeeping (an account the Hub made before identities, until its first Hub sign-in), never exported',
  'core.refresh_tokens.user_id': 'token hashes, never exported',
  'finance.bill_allocations.created_by': 'an organization\'s bookkeeping record you made',
  'finance.bill_decisions.actor_id': 'an approval decision in an organization\'s books',
  'finance.bill_payments.created_by': 'an organization\'s bookkeeping record you made',
  'finance.bill_payment_refunds.created_by': 'an organization\'s bookkeeping record you made',
  'finance.bills.created_by': 'an organization\'s bookkeeping record you made',
  'finance.customer_payments.created_by': 'an organization\'s bookkeeping record you made',
  'finance.customer_refunds.created_by': 'an organization\'s bookkeeping record you made',
  'finance.fx_revaluation_items.created_by': 'an organization\'s bookkeeping record you made',
  'finance.invoices.created_by': 'an organization\'s bookkeeping record you made',
  'finance.journal_entries.created_by': 'an organization\'s journal entry you posted',
  'finance.receivable_allocations.created_by': 'an organization\'s bookkeeping record you made',
  'finance.revenue_recognition_runs.created_by': 'an organization\'s bookkeeping record you made',
};

/** A column name that holds a user id (checked by test/privacy/catalog.test.ts against the catalog). */
export const USER_ID_COLUMN_NAME = /^(user_?id|owner_user_id|actor_id|claimant_id|started_by|created_by|url_set_by|secret_set_by|previous_secret_set_by|revoked_by|invited_by|accepted_by)$/i;

/** Columns never written to an export, whatever table: secrets, token and password hashes. */
export const SECRET_COLUMN_NAME = /(secret|password|token|hash)/i;

/**
 * Column names that look like personal data. A text/json column matching this must be in the catalog.
 * `ip` and `user agent` are matched as words so `description`, `recipient`... do not trigger.
 */
export const PERSONAL_COLUMN_NAME = /(e_?mail|(^|_)name$|^name|phone|address|contact|(^|_)ip(_|$)|user_?agent|username|tax_id|image)/i;

/** `core."User"` → { schema: 'core', name: 'User' } */
export function splitTable(table: string): { schema: string; name: string } {
  const [schema, name] = table.split('.');
  return { schema, name: name.replace(/"/g, '') };
}

/** The party tables (vendors; customers when receivables lands), by party name. */
export function partyTable(party: string): (PersonalDataTable & { person: Extract<PersonLocator, { kind: 'party' }> }) | undefined {
  return PERSONAL_DATA_CATALOG.find((t) => t.person.kind === 'party' && t.person.party === party) as never;
}
