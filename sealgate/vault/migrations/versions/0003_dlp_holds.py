"""dlp: messages held until their sender decides

Revision ID: 0003
Revises: 0002

The held content is a secure message in the new state 'held' (a plain string column, no
CHECK to change); this adds the holds beside it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('holds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('message_id', sa.Uuid(), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('policies', sa.JSON(), nullable=False),
    sa.Column('findings', sa.JSON(), nullable=False),
    sa.Column('allow_send_as_is', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decision', sa.Enum('sent_securely', 'sent_as_is', 'discarded', 'expired', name='hold_decision', native_enum=False, length=16), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['secure_messages.id'], name=op.f('fk_holds_message_id_secure_messages'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_holds_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_holds_message_id'), ['message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_holds_sender'), ['sender'], unique=False)


def downgrade() -> None:
    # Held messages are the only copy of their mail, and the older schema cannot hold them:
    # refuse rather than lose them.
    held = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM secure_messages WHERE state = 'held'")).scalar()
    if held:
        raise RuntimeError(f"{held} message(s) are held for their senders' decision; they "
                           "must be decided or discarded before this downgrade")
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holds_sender'))
        batch_op.drop_index(batch_op.f('ix_holds_message_id'))
        batch_op.drop_index(batch_op.f('ix_holds_expires_at'))

    op.drop_table('holds')
