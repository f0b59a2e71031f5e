"""mail: password reset tokens, the reminder ledger

Revision ID: 0015_mail
Revises: 0014_assign
Create Date: 2026-11-30 03:40:00

``password_reset_token`` holds one emailed reset link per row (only the SHA-256 of its
token; ``accounts.models.PasswordResetToken``). ``reminder_sent`` is the reminder ledger
(``learning.models.ReminderSent``): a unique key per reminder, so each is sent once.

Chained on ``0014_assign`` (the assign branch, merged into this one: the ledger refers to
its ``assignment`` table).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_mail'
down_revision = "0014_assign"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'password_reset_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_password_reset_token_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_password_reset_token')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_password_reset_token_token_hash')),
    )
    with op.batch_alter_table('password_reset_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_token_user_id'), ['user_id'],
                              unique=False)

    op.create_table(
        'reminder_sent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=120), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('recipient_id', sa.Integer(), nullable=False),
        sa.Column('assignment_id', sa.Integer(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('due_14', 'due_3', 'overdue', 'digest')",
                           name=op.f('ck_reminder_sent_kind_known')),
        sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'],
                                name=op.f('fk_reminder_sent_assignment_id_assignment'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'],
                                name=op.f('fk_reminder_sent_organisation_id_organisation')),
        sa.ForeignKeyConstraint(['recipient_id'], ['user_account.id'],
                                name=op.f('fk_reminder_sent_recipient_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder_sent')),
        sa.UniqueConstraint('key', name=op.f('uq_reminder_sent_key')),
    )
    with op.batch_alter_table('reminder_sent', schema=None) as batch_op:
        batch_op.create_index('ix_reminder_sent_org_sent', ['organisation_id', 'sent_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_sent_assignment_id'), ['assignment_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_reminder_sent_recipient_id'), ['recipient_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('reminder_sent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_sent_recipient_id'))
        batch_op.drop_index(batch_op.f('ix_reminder_sent_assignment_id'))
        batch_op.drop_index('ix_reminder_sent_org_sent')
    op.drop_table('reminder_sent')

    with op.batch_alter_table('password_reset_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_token_user_id'))
    op.drop_table('password_reset_token')
