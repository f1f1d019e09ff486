"""Inbox indexes cover only the rows their lookups need: active events, and UNINSTALL events.

Every index on webhook_events is written by the receiver's INSERT and, since `status` is indexed, by each
worker's claim and finish UPDATE (none can be a HOT update). Almost every row is an InboundMessage that is
done within a second, yet both indexes held every row:
- the sweeper, the admitter and /metrics look for pending, processing and failed events only:
  ix_webhook_events_active (status, received_at) keeps just those, so a finished event leaves it;
- the only lookup by type is "is an UNINSTALL waiting?" (oauth.store.uninstall_waiting):
  ix_webhook_events_uninstall_received (received_at) holds UNINSTALL events only, so other events never
  touch it.
Benchmark figures: issue 4's note. On PostgreSQL the new indexes are built CONCURRENTLY, so an upgrade on
a large inbox does not block the receiver's inserts (which would answer 429 meanwhile).

Revision ID: 0009_partial_inbox_indexes
Revises: 0008_ack_path
Create Date: 2026-11-27 08:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_partial_inbox_indexes'
down_revision = '0008_ack_path'
branch_labels = None
depends_on = None

ACTIVE = "status IN ('pending', 'processing', 'failed')"  # integration.models.ACTIVE_STATUSES_SQL, as of 0009
UNINSTALL = "event_type = 'UNINSTALL'"


def _concurrently() -> dict:
    return {"postgresql_concurrently": True} if op.get_bind().dialect.name == "postgresql" else {}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index('ix_webhook_events_active', 'webhook_events', ['status', 'received_at'],
                        postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE), **_concurrently())
        op.create_index('ix_webhook_events_uninstall_received', 'webhook_events', ['received_at'],
                        postgresql_where=sa.text(UNINSTALL), sqlite_where=sa.text(UNINSTALL), **_concurrently())
    op.drop_index('ix_webhook_events_status_received', table_name='webhook_events')
    op.drop_index('ix_webhook_events_type_received', table_name='webhook_events')


def downgrade() -> None:
    op.create_index('ix_webhook_events_type_received', 'webhook_events', ['event_type', 'received_at'])
    op.create_index('ix_webhook_events_status_received', 'webhook_events', ['status', 'received_at'])
    op.drop_index('ix_webhook_events_uninstall_received', table_name='webhook_events')
    op.drop_index('ix_webhook_events_active', table_name='webhook_events')
