"""Events that arrive before their location's install has settled wait for it instead of being ignored
(issue 13, defect 1; oauth.install_wait).

- webhook_events.install_waits: the claims that gave the event back because the install had not settled, so
  EVENT_MAX_ATTEMPTS counts only real attempts (`attempts` itself stays the claim's fencing token). NOT NULL
  with a constant default, so adding it rewrites nothing on PostgreSQL (11+).
- ix_webhook_events_waiting_for_install (location_id), partial on the events waiting right now: a location's
  waiting events are found the moment its token is stored. The receiver's INSERT (install_waits 0) never
  writes to it. Built CONCURRENTLY on PostgreSQL, as 0009's, so the upgrade does not block the receiver.

Revision ID: 0011_install_waits
Revises: 0010_worker_heartbeats
Create Date: 2026-12-04 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011_install_waits'
down_revision = '0010_worker_heartbeats'
branch_labels = None
depends_on = None

WAITING = "status = 'pending' AND install_waits > 0"  # oauth.models.WAITING_FOR_INSTALL_SQL, as of 0011


def _concurrently() -> dict:
    return {"postgresql_concurrently": True} if op.get_bind().dialect.name == "postgresql" else {}


def upgrade() -> None:
    op.add_column('webhook_events', sa.Column('install_waits', sa.Integer(), server_default=sa.text('0'),
                                              nullable=False))
    with op.get_context().autocommit_block():
        op.create_index('ix_webhook_events_waiting_for_install', 'webhook_events', ['location_id'],
                        postgresql_where=sa.text(WAITING), sqlite_where=sa.text(WAITING), **_concurrently())


def downgrade() -> None:
    op.drop_index('ix_webhook_events_waiting_for_install', table_name='webhook_events')
    op.drop_column('webhook_events', 'install_waits')
