"""The Lead Leak report's per-day rollups (issue 14: the report over a year or two in well under 150 ms).

- report_daily_funnels (location_id, day): the funnel counts of the missed calls a location recorded on each of its
  local days (missed, could be texted, texted, replied, booked, won, won value, won without a value, booked and
  not closed). A week of the report is the sum of its seven days: 728 rows for two years instead of 100 000
  calls joined with their leads.
- report_rollup_zones (location_id): the time zone those days are in. A location without a row has no rollup
  (the report builds it on first view, in the zone the page uses; a changed zone rebuilds it the same way).

Kept exactly right by triggers on PostgreSQL, in the transaction that changes the data, so no path that writes
calls or leads can forget it and no late change is missed: a call's INSERT, a status change that moves it into or
out of "could be texted" or "texted", a lead's reply, booking, outcome or value changing weeks later. Each trigger
fires only when the change moves a count (a WHEN clause, no function call otherwise: a call's pending -> sending
costs nothing) and then upserts one row. report_rollup_rebuild(location, zone) recomputes a location's days from
the calls themselves; the triggers take a shared advisory lock per location and the rebuild an exclusive one, so
a rebuild never loses a change made while it runs.

Two indexes for the report's response times (call -> text, call -> first human reply), read index-only:
ix_crm_leads_location_called (location_id, called_at) INCLUDE (texted_at, contact_id, id), and
ix_textback_conversation_messages_person (location_id, contact_id, occurred_at) WHERE author = 'person'.

SQLite (the embedded single-contractor default) gets the tables but no triggers: its report reads the calls.

The upgrade backfills every location whose zone can be told from the database (its settings' time zone, else its
agency's default, else HighLevel's zone for it), in one statement, while it holds the two tables' write locks
(the receiver and workers wait for the upgrade's transaction; about a second per 300 000 calls).

Revision ID: 0015_report_rollups
Revises: 0013_call_activity
Create Date: 2026-12-11 10:00:00
"""

import sqlalchemy as sa
from alembic import op

from integration.db import UTCDateTime

revision = '0015_report_rollups'
down_revision = '0013_call_activity'
branch_labels = None
depends_on = None

# The advisory lock namespace (first key) of the rollup's per-location lock; the second key is hashtext(location).
LOCK_NAMESPACE = 1415

# A call's counts, and its lead's, as integration.report.funnel counts them (the same CASEs, so NULLs agree).
_CALL_PART = {
    "eligible": "CASE WHEN {r}.status <> 'skipped' THEN 1 ELSE 0 END",
    "texted": "CASE WHEN {r}.status = 'sent' THEN 1 ELSE 0 END",
}
_LEAD_PART = {
    "replied": "CASE WHEN {r}.replied_at IS NOT NULL THEN 1 ELSE 0 END",
    "booked": "CASE WHEN {r}.booked_at IS NOT NULL OR {r}.outcome = 'won' THEN 1 ELSE 0 END",
    "won": "CASE WHEN {r}.outcome = 'won' THEN 1 ELSE 0 END",
    "won_value": "CASE WHEN {r}.outcome = 'won' THEN coalesce({r}.outcome_value::numeric, 0) ELSE 0 END",
    "won_unvalued": "CASE WHEN {r}.outcome = 'won' AND {r}.outcome_value IS NULL THEN 1 ELSE 0 END",
    "booked_open": "CASE WHEN {r}.booked_at IS NOT NULL AND {r}.outcome IS NULL THEN 1 ELSE 0 END",
}
_COUNTS = ("missed", "eligible", "texted", "replied", "booked", "won", "won_value", "won_unvalued", "booked_open")


def _part(parts: dict, row: str, sign: str = "") -> dict:
    return {name: f"{sign}({expression.format(r=row)})" for name, expression in parts.items()}


def _differs(parts: dict) -> str:
    return " OR ".join(f"({e.format(r='OLD')}) IS DISTINCT FROM ({e.format(r='NEW')})" for e in parts.values())


def _add_call(row: str, *, sign: str, lead: bool) -> str:
    """PERFORM report_rollup_add for one call row (OLD or NEW), with or without its lead's counts."""
    values = {"missed": f"{sign}1", **_part(_CALL_PART, row, sign)}
    if lead:
        values.update({name: f"{sign}coalesce((SELECT {e.format(r='l')} FROM crm_leads l "  # noqa: S608
                             f"WHERE l.missed_call_id = {row}.id), 0)" for name, e in _LEAD_PART.items()})
    args = ", ".join(values.get(name, "0") for name in _COUNTS)
    return f"PERFORM report_rollup_add({row}.location_id, {row}.created_at, {args});"


# (Built from this module's constants only: no input reaches these strings.)
FUNCTIONS = f"""
CREATE FUNCTION report_rollup_add(p_location varchar, p_at timestamptz, d_missed integer, d_eligible integer,
    d_texted integer, d_replied integer, d_booked integer, d_won integer, d_won_value numeric,
    d_won_unvalued integer, d_booked_open integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_zone varchar;
BEGIN
    IF p_location IS NULL OR p_at IS NULL THEN
        RETURN;
    END IF;
    -- Shared: writers never wait for each other here, only for a rebuild of this location (exclusive).
    PERFORM pg_advisory_xact_lock_shared({LOCK_NAMESPACE}, hashtext(p_location));
    SELECT zone INTO v_zone FROM report_rollup_zones WHERE location_id = p_location;
    IF v_zone IS NULL THEN
        RETURN;  -- no rollup for this location yet: the report builds it from the calls when it is first shown
    END IF;
    INSERT INTO report_daily_funnels AS r (location_id, day, missed, eligible, texted, replied, booked, won,
        won_value, won_unvalued, booked_open)
    VALUES (p_location, (p_at AT TIME ZONE v_zone)::date, d_missed, d_eligible, d_texted, d_replied, d_booked,
        d_won, d_won_value, d_won_unvalued, d_booked_open)
    ON CONFLICT (location_id, day) DO UPDATE SET
        missed = r.missed + EXCLUDED.missed, eligible = r.eligible + EXCLUDED.eligible,
        texted = r.texted + EXCLUDED.texted, replied = r.replied + EXCLUDED.replied,
        booked = r.booked + EXCLUDED.booked, won = r.won + EXCLUDED.won,
        won_value = r.won_value + EXCLUDED.won_value, won_unvalued = r.won_unvalued + EXCLUDED.won_unvalued,
        booked_open = r.booked_open + EXCLUDED.booked_open;
END $$;

CREATE FUNCTION report_rollup_call() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_add_call('NEW', sign='', lead=False)}
        RETURN NULL;  -- (a new call has no lead yet: a lead references its call)
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.location_id = NEW.location_id AND OLD.created_at = NEW.created_at THEN
        -- The usual late change: the status moved in or out of "could be texted" / "texted". Same day, so the
        -- lead's counts stay where they are.
        PERFORM report_rollup_add(NEW.location_id, NEW.created_at, 0,
            ({_CALL_PART['eligible'].format(r='NEW')}) - ({_CALL_PART['eligible'].format(r='OLD')}),
            ({_CALL_PART['texted'].format(r='NEW')}) - ({_CALL_PART['texted'].format(r='OLD')}),
            0, 0, 0, 0, 0, 0);
        RETURN NULL;
    END IF;
    -- Moved to another day or location (or deleted): its counts, with its lead's, leave the old day.
    {_add_call('OLD', sign='-', lead=True)}
    IF TG_OP = 'UPDATE' THEN
        {_add_call('NEW', sign='', lead=True)}
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_rollup_lead() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_location varchar;
    v_at timestamptz;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT location_id, created_at INTO v_location, v_at FROM textback_missed_calls WHERE id = OLD.missed_call_id;
        PERFORM report_rollup_add(v_location, v_at, 0, 0, 0, {", ".join(_part(_LEAD_PART, "OLD", "-").values())});
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        SELECT location_id, created_at INTO v_location, v_at FROM textback_missed_calls WHERE id = NEW.missed_call_id;
        PERFORM report_rollup_add(v_location, v_at, 0, 0, 0, {", ".join(_part(_LEAD_PART, "NEW").values())});
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_rollup_rebuild(p_location varchar, p_zone varchar) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_days integer;
BEGIN
    PERFORM now() AT TIME ZONE p_zone;  -- an unknown zone raises here, before anything changes
    -- Exclusive: waits for every open transaction that changed this location's counts (they hold the shared
    -- lock until they end), and holds new ones back until this commits. The statements below therefore see every
    -- change made before, and every change made after is added to the rebuilt rows by its own trigger.
    PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, hashtext(p_location));
    INSERT INTO report_rollup_zones (location_id, zone, built_at) VALUES (p_location, p_zone, now())
    ON CONFLICT (location_id) DO UPDATE SET zone = EXCLUDED.zone, built_at = EXCLUDED.built_at;
    DELETE FROM report_daily_funnels WHERE location_id = p_location;
    INSERT INTO report_daily_funnels (location_id, day, missed, eligible, texted, replied, booked, won, won_value,
        won_unvalued, booked_open)
    SELECT c.location_id, (c.created_at AT TIME ZONE p_zone)::date, count(*),
        {", ".join(f"sum({e.format(r='c')})" for e in _CALL_PART.values())},
        {", ".join(f"coalesce(sum({e.format(r='l')}), 0)" for e in _LEAD_PART.values())}
    FROM textback_missed_calls c LEFT JOIN crm_leads l ON l.missed_call_id = c.id
    WHERE c.location_id = p_location AND c.created_at IS NOT NULL
    GROUP BY 1, 2;
    GET DIAGNOSTICS v_days = ROW_COUNT;
    RETURN v_days;
END $$;
"""  # noqa: S608

TRIGGERS = f"""
CREATE TRIGGER report_rollup_call_insert AFTER INSERT ON textback_missed_calls
    FOR EACH ROW EXECUTE FUNCTION report_rollup_call();
CREATE TRIGGER report_rollup_call_update AFTER UPDATE OF status, created_at, location_id ON textback_missed_calls
    FOR EACH ROW WHEN (OLD.location_id IS DISTINCT FROM NEW.location_id OR OLD.created_at IS DISTINCT FROM
        NEW.created_at OR {_differs(_CALL_PART)})
    EXECUTE FUNCTION report_rollup_call();
CREATE TRIGGER report_rollup_call_delete AFTER DELETE ON textback_missed_calls
    FOR EACH ROW EXECUTE FUNCTION report_rollup_call();
CREATE TRIGGER report_rollup_lead_insert AFTER INSERT ON crm_leads
    FOR EACH ROW WHEN (NEW.replied_at IS NOT NULL OR NEW.booked_at IS NOT NULL OR NEW.outcome IS NOT NULL)
    EXECUTE FUNCTION report_rollup_lead();
CREATE TRIGGER report_rollup_lead_update AFTER UPDATE OF missed_call_id, replied_at, booked_at, outcome,
    outcome_value ON crm_leads
    FOR EACH ROW WHEN (OLD.missed_call_id IS DISTINCT FROM NEW.missed_call_id OR {_differs(_LEAD_PART)})
    EXECUTE FUNCTION report_rollup_lead();
CREATE TRIGGER report_rollup_lead_delete AFTER DELETE ON crm_leads
    FOR EACH ROW EXECUTE FUNCTION report_rollup_lead();
"""

# The zone each location's pages use, as far as the database tells it (integration.page_tenant: the settings'
# time zone, its agency's default, the zone HighLevel gave; the page also asks the cached HighLevel profile, and
# rebuilds a location whose zone turns out different). Only zones PostgreSQL knows.
BACKFILL = """
INSERT INTO report_rollup_zones (location_id, zone, built_at)
SELECT z.id, z.zone, now() FROM (
    SELECT loc.id, coalesce(nullif(s.values ->> 'timezone', ''), nullif(c.default_settings ->> 'timezone', ''),
                            nullif(loc.timezone, ''), 'America/New_York') AS zone
    FROM locations loc
    LEFT JOIN location_settings s ON s.location_id = loc.id
    LEFT JOIN companies c ON c.id = loc.company_id) AS z
WHERE z.zone IN (SELECT name FROM pg_timezone_names);
SELECT report_rollup_rebuild(location_id, zone) FROM report_rollup_zones;
"""


def upgrade() -> None:
    op.create_table(
        'report_rollup_zones',
        sa.Column('location_id', sa.String(length=64), nullable=False),
        sa.Column('zone', sa.String(length=64), nullable=False),
        sa.Column('built_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('location_id', name=op.f('pk_report_rollup_zones')),
    )
    op.create_table(
        'report_daily_funnels',
        sa.Column('location_id', sa.String(length=64), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS[:6]),
        sa.Column('won_value', sa.Numeric(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS[7:]),
        sa.PrimaryKeyConstraint('location_id', 'day', name=op.f('pk_report_daily_funnels')),
    )
    # The response times (integration.report.timing): index-only scans of a period's leads and people's texts.
    op.create_index('ix_crm_leads_location_called', 'crm_leads', ['location_id', 'called_at'],
                    postgresql_include=['texted_at', 'contact_id', 'id'])
    op.create_index('ix_textback_conversation_messages_person', 'textback_conversation_messages',
                    ['location_id', 'contact_id', 'occurred_at'], postgresql_where=sa.text("author = 'person'"),
                    sqlite_where=sa.text("author = 'person'"))
    if op.get_bind().dialect.name != "postgresql":
        return
    # Writers wait from here until this transaction commits (triggers and backfill become visible together).
    op.execute("LOCK TABLE textback_missed_calls, crm_leads IN SHARE ROW EXCLUSIVE MODE")
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in (("call_insert", "textback_missed_calls"), ("call_update", "textback_missed_calls"),
                            ("call_delete", "textback_missed_calls"), ("lead_insert", "crm_leads"),
                            ("lead_update", "crm_leads"), ("lead_delete", "crm_leads")):
            op.execute(f"DROP TRIGGER IF EXISTS report_rollup_{name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS report_rollup_rebuild(varchar, varchar)")
        op.execute("DROP FUNCTION IF EXISTS report_rollup_lead()")
        op.execute("DROP FUNCTION IF EXISTS report_rollup_call()")
        op.execute("DROP FUNCTION IF EXISTS report_rollup_add(varchar, timestamptz, integer, integer, integer, "
                   "integer, integer, integer, numeric, integer, integer)")
    op.drop_index('ix_textback_conversation_messages_person', table_name='textback_conversation_messages')
    op.drop_index('ix_crm_leads_location_called', table_name='crm_leads')
    op.drop_table('report_daily_funnels')
    op.drop_table('report_rollup_zones')
