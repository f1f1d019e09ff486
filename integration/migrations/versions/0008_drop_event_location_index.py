"""Drop ix_webhook_events_location_id: the only lookup by location (is an UNINSTALL waiting?) also filters
on event_type and is served by ix_webhook_events_type_received, and each index is one more write on the
webhook ack path.

Revision ID: 0008_ack_path
Revises: 0007_ack_path
Create Date: 2026-11-27 04:25:00
"""

from alembic import op

revision = '0008_ack_path'
down_revision = '0007_ack_path'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_webhook_events_location_id', table_name='webhook_events')


def downgrade() -> None:
    op.create_index('ix_webhook_events_location_id', 'webhook_events', ['location_id'], unique=False)
