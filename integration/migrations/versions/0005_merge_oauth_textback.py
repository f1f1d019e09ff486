"""Merge the OAuth and text-back branches (built in parallel) back into one line of history.

Revision ID: 0005_merge
Revises: 0002_oauth, 0004_textback
Create Date: 2026-11-27
"""

revision = "0005_merge"
down_revision = ("0002_oauth", "0004_textback")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
