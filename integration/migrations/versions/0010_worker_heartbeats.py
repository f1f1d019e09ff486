"""Worker heartbeats, and who holds an event or a text in flight: a killed worker's work is taken over within
seconds (its heartbeat stops) instead of when its 15 s lease runs out (issue 13, defect 3).

Both new columns are nullable without a default, so adding them rewrites nothing on PostgreSQL.

Revision ID: 0010_worker_heartbeats
Revises: 0009_partial_inbox_indexes
Create Date: 2026-12-03 11:40:00
"""

import sqlalchemy as sa
from alembic import op

from integration.db import UTCDateTime

revision = '0010_worker_heartbeats'
down_revision = '0009_partial_inbox_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_heartbeats',
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('started_at', UTCDateTime(), nullable=False),
        sa.Column('beat_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_heartbeats')),
    )
    op.add_column('webhook_events', sa.Column('claimed_by', sa.String(length=120), nullable=True))
    op.add_column('textback_send_intents', sa.Column('holder', sa.String(length=120), nullable=True))


def downgrade() -> None:
    op.drop_column('textback_send_intents', 'holder')
    op.drop_column('webhook_events', 'claimed_by')
    op.drop_table('worker_heartbeats')
