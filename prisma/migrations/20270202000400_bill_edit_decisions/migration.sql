-- Bills and expense claims: who last changed a document's content is recorded, as a decision 'edit'.
--
-- Four-eyes approval refused only the creator (and a claim's claimant): another bookkeeper could rewrite the lines of
-- someone's draft or rejected bill and then approve what they wrote themselves. An edit replaces the whole content, so
-- its author is the author of what is approved; the API refuses approval from the creator, the claimant, the last
-- editor and the submitter. The row goes into the append-only decision trail (listed with the decisions), so the
-- check needs no read of the audit log (which only owners and admins may read).

ALTER TABLE finance.bill_decisions DROP CONSTRAINT bill_decisions_decision_check;
ALTER TABLE finance.bill_decisions ADD CONSTRAINT bill_decisions_decision_check
  CHECK (decision IN ('submit', 'approve', 'reject', 'comment', 'edit'));
