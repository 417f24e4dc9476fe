-- core.email_of_another_account (migration 20270211001000) looks for another account whose stored address, trimmed,
-- lower-cased and in NFC, is the given one so (review rF: the Hub writes core."User" directly, so a stored address may be
-- padded, have capitals or be decomposed; the unique index on email serves none of that). This index serves that lookup.
-- Its own migration, so its own transaction (review rF): built inside 20270211001000, its SHARE lock on core."User"
-- (registrations, e-mail changes and the Hub's writes wait; reads go on) lasted through that migration's update of every
-- identity (9.5 s at 300k identities); here it lasts the build only. Not CONCURRENTLY: refused inside the migration's
-- transaction. Not unique: case twins and the pairs 20270211000700 reported and left share a form. normalize() and
-- lower() are immutable; the migration role owns the table (no superuser). RLS and grants are unchanged (an index only).
CREATE INDEX user_email_norm_idx ON core."User" ((normalize(lower(trim(email)), NFC)));
