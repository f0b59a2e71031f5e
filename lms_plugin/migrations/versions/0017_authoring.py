"""authoring: the web editor's optimistic lock and a version's go-live time

Revision ID: 0017_authoring
Revises: 0013_perf
Create Date: 2026-11-30 03:30:00

``module_version.lock_version`` counts the saved edits of a draft (a stale editor form is
refused as a conflict); ``module_version.go_live_at`` is the optional time learners start on
a published version.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017_authoring'
down_revision = "0013_perf"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('go_live_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lock_version', sa.Integer(), server_default='0',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.drop_column('lock_version')
        batch_op.drop_column('go_live_at')
