"""routing: verified-TLS verdicts and deliveries

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tls_verdicts',
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('qualifies', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('domain', name=op.f('pk_tls_verdicts'))
    )
    op.create_table('tls_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('state', sa.Enum('sent', 'retry', 'delivered', 'failed', 'portal', name='tls_delivery_state', native_enum=False, length=16), nullable=False),
    sa.Column('envelope_digest', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['secure_messages.id'], name=op.f('fk_tls_deliveries_message_id_secure_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tls_deliveries')),
    sa.UniqueConstraint('message_id', 'recipient', name=op.f('uq_tls_deliveries_message_id_recipient'))
    )
    with op.batch_alter_table('tls_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tls_deliveries_envelope_digest'), ['envelope_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_tls_deliveries_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tls_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tls_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tls_deliveries_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_tls_deliveries_message_id'))
        batch_op.drop_index(batch_op.f('ix_tls_deliveries_envelope_digest'))
    op.drop_table('tls_deliveries')
    op.drop_table('tls_verdicts')
