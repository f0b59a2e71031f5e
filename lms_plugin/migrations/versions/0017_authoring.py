"""authoring: the web editor's optimistic lock

Revision ID: 0017_authoring
Revises: 0016_credits
Create Date: 2026-11-30 03:30:00

``module_version.lock_version`` counts the saved edits of a draft (a stale editor form is
refused as a conflict). A version's go-live time (``go_live_at``) comes with 0014_assign.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017_authoring'
down_revision = "0016_credits"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lock_version', sa.Integer(), server_default='0',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.drop_column('lock_version')
