"""The app page (issue 14): agencies' white-label domains (CSP frame-ancestors) and test texts.

- companies.whitelabel_domain: from the INSTALL webhook's whitelabelDetails.domain; the agency's own
  HighLevel address may embed our page.
- textback_test_texts: "send me a test text" from the settings page, kept apart from missed calls and
  send intents so no activity or report ever counts one.

Revision ID: 0012_app_page_settings
Revises: 0011_install_waits
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

from integration.db import UTCDateTime

revision = '0012_app_page_settings'
down_revision = '0011_install_waits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('companies', sa.Column('whitelabel_domain', sa.String(length=253), nullable=True))
    op.create_table(
        'textback_test_texts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('location_id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('to_number', sa.String(length=32), nullable=True),
        sa.Column('template_key', sa.String(length=32), nullable=False),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.Column('contact_id', sa.String(length=64), nullable=True),
        sa.Column('message_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_textback_test_texts_location_created', 'textback_test_texts', ['location_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_textback_test_texts_location_created', table_name='textback_test_texts')
    op.drop_table('textback_test_texts')
    op.drop_column('companies', 'whitelabel_domain')
