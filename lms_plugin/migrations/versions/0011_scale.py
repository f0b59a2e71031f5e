"""scale: indexes for the jobs and people pages and pruning; roster warning

Revision ID: 0011_scale
Revises: 0010_sessions
Create Date: 2026-11-30 00:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_scale'
down_revision = "0010_sessions"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('lti_context', schema=None) as batch_op:
        batch_op.add_column(sa.Column('roster_warning', sa.String(length=500), nullable=True))

    with op.batch_alter_table('outbox_job', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_job_org_status')
        batch_op.create_index('ix_outbox_job_org_updated',
                              ['organisation_id', 'updated_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_job_org_status_updated',
                              ['organisation_id', 'status', 'updated_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_job_status_finished', ['status', 'finished_at'],
                              unique=False)

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.create_index('ix_user_account_org_name', ['organisation_id', 'name', 'id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_index('ix_user_account_org_name')

    with op.batch_alter_table('outbox_job', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_job_status_finished')
        batch_op.drop_index('ix_outbox_job_org_status_updated')
        batch_op.drop_index('ix_outbox_job_org_updated')
        batch_op.create_index('ix_outbox_job_org_status', ['organisation_id', 'status'],
                              unique=False)

    with op.batch_alter_table('lti_context', schema=None) as batch_op:
        batch_op.drop_column('roster_warning')
