"""portal: accounts with TOTP and recovery codes, sessions, one-time codes, replies, tracking

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('mfa_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['portal_accounts.id'], name=op.f('fk_portal_sessions_account_id_portal_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sessions')),
    sa.UniqueConstraint('digest', name=op.f('uq_portal_sessions_digest'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_address'), ['address'], unique=False)

    op.create_table('recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['portal_accounts.id'], name=op.f('fk_recovery_codes_account_id_portal_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    sa.UniqueConstraint('digest', name=op.f('uq_recovery_codes_digest'))
    )
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_codes_account_id'), ['account_id'], unique=False)

    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_access_tokens_address'), ['address'], unique=False)

    with op.batch_alter_table('parts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remote_images', sa.Integer(), nullable=True))

    with op.batch_alter_table('portal_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_key_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('totp_wrapped', sa.LargeBinary(length=128), nullable=True))
        batch_op.add_column(sa.Column('totp_enabled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('downloads', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('question', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('answer_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('answer_failures', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('secure_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_reply_to_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_secure_messages_in_reply_to_id'), ['in_reply_to_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_secure_messages_in_reply_to_id_secure_messages'), 'secure_messages', ['in_reply_to_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('secure_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_secure_messages_in_reply_to_id_secure_messages'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_secure_messages_in_reply_to_id'))
        batch_op.drop_column('in_reply_to_id')

    with op.batch_alter_table('recipients', schema=None) as batch_op:
        batch_op.drop_column('answer_failures')
        batch_op.drop_column('answer_hash')
        batch_op.drop_column('question')
        batch_op.drop_column('downloads')

    with op.batch_alter_table('parts', schema=None) as batch_op:
        batch_op.drop_column('remote_images')

    with op.batch_alter_table('portal_accounts', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_wrapped')
        batch_op.drop_column('totp_key_version')

    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_tokens_address'))
        batch_op.drop_column('attempts')
        batch_op.drop_column('address')

    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_codes_account_id'))

    op.drop_table('recovery_codes')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_address'))

    op.drop_table('portal_sessions')
