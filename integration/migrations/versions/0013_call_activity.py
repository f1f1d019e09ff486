"""Activity ("why didn't it text?") and the Lead Leak report (issue 14, items 3 and 4).

- textback_missed_calls.contact_name: the caller's name from their HighLevel contact, written by the same UPDATE
  that records the call's decision (no extra statement on the send path), so the activity can be searched by name.
- ix_textback_missed_calls_location_created_id (location_id, created_at, id) replaces (location_id, created_at):
  the activity pages newest first with keyset paging on (created_at, id), which needs the id in the index to stay
  an index range scan at any depth. Same number of indexes on the table, so no extra cost per call.
- ix_webhook_events_ignored_calls (location_id, received_at, id), partial on the inbound calls that were no missed
  call (answered, or a status the location does not count): those exist only as ignored inbox rows. A missed
  call's INSERT (pending) never writes to it. Built CONCURRENTLY on PostgreSQL, as 0009's, so the upgrade does
  not block the receiver.

Revision ID: 0013_call_activity
Revises: 0012_app_page_settings
Create Date: 2026-12-10 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013_call_activity'
down_revision = '0012_app_page_settings'
branch_labels = None
depends_on = None

# integration.textback.models.IGNORED_CALLS_SQL, as of 0013.
IGNORED_CALLS = ("status = 'ignored' AND (status_reason LIKE 'not a missed call: answered%' "
                 "OR status_reason LIKE 'not a missed call: % not counted as missed%')")


def _concurrently() -> dict:
    return {"postgresql_concurrently": True} if op.get_bind().dialect.name == "postgresql" else {}


def upgrade() -> None:
    op.add_column('textback_missed_calls', sa.Column('contact_name', sa.String(length=255), nullable=True))
    op.create_index('ix_textback_missed_calls_location_created_id', 'textback_missed_calls',
                    ['location_id', 'created_at', 'id'])
    op.drop_index('ix_textback_missed_calls_location_created', table_name='textback_missed_calls')
    with op.get_context().autocommit_block():
        op.create_index('ix_webhook_events_ignored_calls', 'webhook_events', ['location_id', 'received_at', 'id'],
                        postgresql_where=sa.text(IGNORED_CALLS), sqlite_where=sa.text(IGNORED_CALLS),
                        **_concurrently())


def downgrade() -> None:
    op.drop_index('ix_webhook_events_ignored_calls', table_name='webhook_events')
    op.create_index('ix_textback_missed_calls_location_created', 'textback_missed_calls',
                    ['location_id', 'created_at'])
    op.drop_index('ix_textback_missed_calls_location_created_id', table_name='textback_missed_calls')
    op.drop_column('textback_missed_calls', 'contact_name')
