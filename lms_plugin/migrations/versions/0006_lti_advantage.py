"""lti advantage: roster sync state, membership active flag, never-launched members

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 10:47:01.962169

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('lti_context', schema=None) as batch_op:
        batch_op.add_column(sa.Column('roster_synced_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('roster_differences_url', sa.String(length=1000), nullable=True))

    with op.batch_alter_table('lti_membership', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column('last_launch_at',
               existing_type=sa.DateTime(timezone=True),
               nullable=True)



def downgrade():
    # Members synced from a roster but never launched have no launch time: give them one so
    # the NOT NULL of the previous schema holds.
    op.execute("UPDATE lti_membership SET last_launch_at = CURRENT_TIMESTAMP "
               "WHERE last_launch_at IS NULL")
    with op.batch_alter_table('lti_membership', schema=None) as batch_op:
        batch_op.alter_column('last_launch_at',
               existing_type=sa.DateTime(timezone=True),
               nullable=False)
        batch_op.drop_column('removed_at')
        batch_op.drop_column('active')

    with op.batch_alter_table('lti_context', schema=None) as batch_op:
        batch_op.drop_column('roster_differences_url')
        batch_op.drop_column('roster_synced_at')

