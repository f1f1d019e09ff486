"""Drop ix_webhook_events_event_type: ix_webhook_events_type_received (event_type, received_at) serves every
lookup by event type, and each index is one more write on the webhook ack path.

Revision ID: 0007_ack_path
Revises: 0006_crm
Create Date: 2026-11-27 03:45:00
"""

from alembic import op

revision = '0007_ack_path'
down_revision = '0006_crm'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_webhook_events_event_type', table_name='webhook_events')


def downgrade() -> None:
    op.create_index('ix_webhook_events_event_type', 'webhook_events', ['event_type'], unique=False)
