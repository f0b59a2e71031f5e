"""outbound: hosts an admin allows for a registration's service URLs

Revision ID: 0009_outbound
Revises: 0008_lti_launch
Create Date: 2026-11-30 00:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_outbound'
down_revision = '0008_lti_launch'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('lti_platform', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allowed_hosts', sa.JSON(), nullable=True))
    op.execute("UPDATE lti_platform SET allowed_hosts = '[]'")
    with op.batch_alter_table('lti_platform', schema=None) as batch_op:
        batch_op.alter_column('allowed_hosts', existing_type=sa.JSON(), nullable=False)


def downgrade():
    with op.batch_alter_table('lti_platform', schema=None) as batch_op:
        batch_op.drop_column('allowed_hosts')
