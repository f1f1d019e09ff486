"""Each lead keeps when a person first texted the caller after the call (issue 14: the report's response times).

- crm_leads.first_human_reply_at: the earliest text a person (not us, not the caller) sent the lead's contact in
  its location at or after the call and less than seven days after it (integration.report.timing's window), or
  NULL. The report's two response times (call -> text, call -> first human reply) then come from one index-only
  scan of a period's leads instead of a join with the conversation log (about two thirds of the report's time
  over two years).
- ix_crm_leads_location_called (location_id, called_at) INCLUDE (texted_at, first_human_reply_at) replaces 0015's
  INCLUDE (texted_at, contact_id, id): the join that needed those is gone on PostgreSQL.

Kept exactly right by triggers on PostgreSQL, in the transaction that changes the data, whichever path writes:
- a person's text inserted, deleted, or changed (author, contact, location, time) recomputes the leads of that
  contact whose seven-day window holds the old or the new time;
- a lead inserted, or its location, contact or call time changed, computes its own value (a BEFORE trigger);
  the column is the triggers' alone: a value written to it by anything else is recomputed the same way.
Both take an exclusive transaction advisory lock on the (location, contact)'s bucket first, so a lead and a text
committed at the same moment cannot each miss the other (the second waits, then reads the first's row).

SQLite (the embedded single-contractor default) gets the column but no triggers: its report joins the texts, as
before. The upgrade backfills every lead in one statement.

Revision ID: 0017_lead_first_human_reply
Revises: 0015_report_rollups
Create Date: 2026-12-12 10:00:00
"""

import sqlalchemy as sa
from alembic import op

from integration.db import UTCDateTime

revision = '0017_lead_first_human_reply'
down_revision = '0015_report_rollups'
branch_labels = None
depends_on = None

# The advisory lock namespace (first key) of the per-contact lock; the second key is a bucket of the hash of
# location and contact. Buckets, not one lock per contact: a transaction's advisory locks stay in PostgreSQL's
# shared lock table until it ends (max_locks_per_transaction x connections, 6 400 slots by default), so one
# statement writing 60 000 leads must not take 60 000 of them. Two contacts sharing a bucket only wait for each
# other's commit.
LOCK_NAMESPACE = 1417
LOCK_BUCKETS = 256
# integration.report.timing.HUMAN_REPLY_WINDOW and ConversationMessage.PERSON, as of 0017.
WINDOW = "interval '7 days'"
PERSON = "'person'"

# The first person's text for lead {l} (the same predicate as integration.report.timing's live join).
_FIRST = ("(SELECT min(m.occurred_at) FROM textback_conversation_messages m "  # noqa: S608 (constants only)
          f"WHERE m.location_id = {{l}}.location_id AND m.contact_id = {{l}}.contact_id AND m.author = {PERSON} "
          f"AND m.occurred_at >= {{l}}.called_at AND m.occurred_at < {{l}}.called_at + {WINDOW})")

FUNCTIONS = f"""
CREATE FUNCTION lead_reply_lock(p_location varchar, p_contact varchar) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock({LOCK_NAMESPACE}, hashtext(coalesce(p_location, '') || chr(31) ||
                                                               coalesce(p_contact, '')) & {LOCK_BUCKETS - 1});
$$;

CREATE FUNCTION lead_reply_recompute(p_location varchar, p_contact varchar, p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_location IS NULL OR p_contact IS NULL OR p_at IS NULL THEN
        RETURN;
    END IF;
    -- The leads whose window [called_at, called_at + 7 days) holds p_at (ix_crm_leads_contact finds them).
    UPDATE crm_leads l SET first_human_reply_at = {_FIRST.format(l='l')}
    WHERE l.location_id = p_location AND l.contact_id = p_contact AND l.called_at <= p_at
      AND l.called_at > p_at - {WINDOW}
      AND l.first_human_reply_at IS DISTINCT FROM {_FIRST.format(l='l')};
END $$;

CREATE FUNCTION lead_reply_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.author = {PERSON} THEN
        PERFORM lead_reply_lock(OLD.location_id, OLD.contact_id);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.author = {PERSON} THEN
        PERFORM lead_reply_lock(NEW.location_id, NEW.contact_id);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.author = {PERSON} THEN
        PERFORM lead_reply_recompute(OLD.location_id, OLD.contact_id, OLD.occurred_at);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.author = {PERSON} THEN
        PERFORM lead_reply_recompute(NEW.location_id, NEW.contact_id, NEW.occurred_at);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION lead_reply_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lead_reply_lock(NEW.location_id, NEW.contact_id);
    NEW.first_human_reply_at := {_FIRST.format(l='NEW')};
    RETURN NEW;
END $$;
"""  # noqa: S608 (built from this module's constants only)

_MESSAGE_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}"
                               for c in ("author", "location_id", "contact_id", "occurred_at"))
TRIGGERS = f"""
CREATE TRIGGER lead_reply_message_insert AFTER INSERT ON textback_conversation_messages
    FOR EACH ROW WHEN (NEW.author = {PERSON}) EXECUTE FUNCTION lead_reply_message();
CREATE TRIGGER lead_reply_message_update AFTER UPDATE OF author, location_id, contact_id, occurred_at
    ON textback_conversation_messages
    FOR EACH ROW WHEN ((OLD.author = {PERSON} OR NEW.author = {PERSON}) AND ({_MESSAGE_CHANGED}))
    EXECUTE FUNCTION lead_reply_message();
CREATE TRIGGER lead_reply_message_delete AFTER DELETE ON textback_conversation_messages
    FOR EACH ROW WHEN (OLD.author = {PERSON}) EXECUTE FUNCTION lead_reply_message();
CREATE TRIGGER lead_reply_lead_insert BEFORE INSERT ON crm_leads
    FOR EACH ROW EXECUTE FUNCTION lead_reply_lead();
CREATE TRIGGER lead_reply_lead_update BEFORE UPDATE OF location_id, contact_id, called_at, first_human_reply_at
    ON crm_leads
    FOR EACH ROW WHEN (OLD.location_id IS DISTINCT FROM NEW.location_id OR OLD.contact_id IS DISTINCT FROM
        NEW.contact_id OR OLD.called_at IS DISTINCT FROM NEW.called_at
        OR OLD.first_human_reply_at IS DISTINCT FROM NEW.first_human_reply_at)
    EXECUTE FUNCTION lead_reply_lead();
"""

BACKFILL = f"UPDATE crm_leads l SET first_human_reply_at = {_FIRST.format(l='l')} WHERE l.contact_id IS NOT NULL"  # noqa: S608


def upgrade() -> None:
    op.add_column('crm_leads', sa.Column('first_human_reply_at', UTCDateTime(timezone=True), nullable=True))
    op.drop_index('ix_crm_leads_location_called', table_name='crm_leads')
    if op.get_bind().dialect.name == "postgresql":
        # Writers wait from here until this transaction commits (triggers and backfill become visible together).
        op.execute("LOCK TABLE crm_leads, textback_conversation_messages IN SHARE ROW EXCLUSIVE MODE")
        op.execute(FUNCTIONS)
        op.execute(BACKFILL)  # (before the triggers: nobody else writes now, they would only repeat it per row)
        op.execute(TRIGGERS)
    op.create_index('ix_crm_leads_location_called', 'crm_leads', ['location_id', 'called_at'],
                    postgresql_include=['texted_at', 'first_human_reply_at'])


def downgrade() -> None:
    op.drop_index('ix_crm_leads_location_called', table_name='crm_leads')
    if op.get_bind().dialect.name == "postgresql":
        for name, table in (("message_insert", "textback_conversation_messages"),
                            ("message_update", "textback_conversation_messages"),
                            ("message_delete", "textback_conversation_messages"),
                            ("lead_insert", "crm_leads"), ("lead_update", "crm_leads")):
            op.execute(f"DROP TRIGGER IF EXISTS lead_reply_{name} ON {table}")
        for function in ("lead_reply_lead()", "lead_reply_message()",
                         "lead_reply_recompute(varchar, varchar, timestamptz)", "lead_reply_lock(varchar, varchar)"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_column('crm_leads', 'first_human_reply_at')
    op.create_index('ix_crm_leads_location_called', 'crm_leads', ['location_id', 'called_at'],
                    postgresql_include=['texted_at', 'contact_id', 'id'])
