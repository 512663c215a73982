"""routing: recipients' S/MIME certificates and OpenPGP keys

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recipient_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.Enum('smime', 'pgp', name='key_kind', native_enum=False, length=16), nullable=False),
    sa.Column('fingerprint', sa.String(length=128), nullable=False),
    sa.Column('material', sa.LargeBinary(), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recipient_keys')),
    sa.UniqueConstraint('kind', 'fingerprint', 'address', name=op.f('uq_recipient_keys_kind_fingerprint_address'))
    )
    with op.batch_alter_table('recipient_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recipient_keys_address'), ['address'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recipient_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recipient_keys_address'))
    op.drop_table('recipient_keys')
