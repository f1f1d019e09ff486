"""The booking agent (issue 15): its conversations, the callers' texts it answers, the texts it owes.

- agent_conversations: one per lead (unique lead_id); the dialogue state and memory, a lease so one worker at a
  time answers a conversation, and the booking (status, start, appointment id) written before the POST.
- agent_inbound: a caller's text, unique on HighLevel's messageId (a webhook twice is answered once), due at the
  text's time plus the grace period.
- agent_outbound: a text the agent owes, unique per inbound text and position, written before it is sent.

The settings live in the existing LocationSettings document ("agent" section): no column for them.

Revision ID: 0018_booking_agent
Revises: 0017_lead_first_human_reply
Create Date: 2026-12-12 10:00:00
"""

from alembic import op
import sqlalchemy as sa
import integration.db
from sqlalchemy.dialects import postgresql

revision = '0018_booking_agent'
down_revision = '0017_lead_first_human_reply'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_conversations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lead_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('location_id', sa.String(length=64), nullable=False),
    sa.Column('contact_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('memory', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('lease_until', integration.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('booking_status', sa.String(length=16), nullable=True),
    sa.Column('booking_start', integration.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('appointment_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', integration.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', integration.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['crm_leads.id'], name=op.f('fk_agent_conversations_lead_id_crm_leads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_conversations')),
    sa.UniqueConstraint('lead_id', name=op.f('uq_agent_conversations_lead_id'))
    )
    with op.batch_alter_table('agent_conversations', schema=None) as batch_op:
        batch_op.create_index('ix_agent_conversations_contact', ['location_id', 'contact_id'], unique=False)

    op.create_table('agent_inbound',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('occurred_at', integration.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', integration.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.Column('created_at', integration.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('processed_at', integration.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['agent_conversations.id'], name=op.f('fk_agent_inbound_conversation_id_agent_conversations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_inbound')),
    sa.UniqueConstraint('message_id', name=op.f('uq_agent_inbound_message_id'))
    )
    with op.batch_alter_table('agent_inbound', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_inbound_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index('ix_agent_inbound_status_due', ['status', 'due_at'], unique=False)

    op.create_table('agent_outbound',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('conversation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('not_before', integration.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', integration.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', integration.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['agent_conversations.id'], name=op.f('fk_agent_outbound_conversation_id_agent_conversations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_outbound')),
    sa.UniqueConstraint('key', name=op.f('uq_agent_outbound_key'))
    )
    with op.batch_alter_table('agent_outbound', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_outbound_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_outbound_message_id'), ['message_id'], unique=False)
        batch_op.create_index('ix_agent_outbound_status_not_before', ['status', 'not_before'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('agent_outbound', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_outbound_status_not_before')
        batch_op.drop_index(batch_op.f('ix_agent_outbound_message_id'))
        batch_op.drop_index(batch_op.f('ix_agent_outbound_conversation_id'))

    op.drop_table('agent_outbound')
    with op.batch_alter_table('agent_inbound', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_inbound_status_due')
        batch_op.drop_index(batch_op.f('ix_agent_inbound_conversation_id'))

    op.drop_table('agent_inbound')
    with op.batch_alter_table('agent_conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_conversations_contact')

    op.drop_table('agent_conversations')
