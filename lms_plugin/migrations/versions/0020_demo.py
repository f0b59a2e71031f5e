"""demo: the built-in demo LMS (issue 12.3)

Revision ID: 0020_demo
Revises: 0019_signoff
Create Date: 2026-11-30 03:30:00

``organisation.is_demo`` marks the demo LMS's own organisation (never a default for commands
or registrations). The demo platform keeps its signing key, its course's links and its
gradebook (line items and the scores the tool posted) in four ``demo_*`` tables.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020_demo'
down_revision = "0019_signoff"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_demo', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.create_table(
        'demo_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kid', sa.String(length=64), nullable=False),
        sa.Column('private_pem', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_demo_key')),
        sa.UniqueConstraint('kid', name=op.f('uq_demo_key_kid')),
    )
    op.create_table(
        'demo_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=250), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('custom', sa.JSON(), nullable=False),
        sa.Column('lineitem_label', sa.String(length=250), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_demo_link')),
    )
    op.create_table(
        'demo_lineitem',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=250), nullable=False),
        sa.Column('score_maximum', sa.Double(), nullable=False),
        sa.Column('resource_id', sa.String(length=255), nullable=True),
        sa.Column('resource_link_id', sa.String(length=255), nullable=True),
        sa.Column('tag', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_demo_lineitem')),
    )
    op.create_table(
        'demo_score',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lineitem_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.String(length=255), nullable=False),
        sa.Column('score_given', sa.Double(), nullable=True),
        sa.Column('score_maximum', sa.Double(), nullable=True),
        sa.Column('activity_progress', sa.String(length=32), nullable=False),
        sa.Column('grading_progress', sa.String(length=32), nullable=False),
        sa.Column('timestamp', sa.String(length=64), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['lineitem_id'], ['demo_lineitem.id'],
                                name=op.f('fk_demo_score_lineitem_id_demo_lineitem'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_demo_score')),
    )
    with op.batch_alter_table('demo_score', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_demo_score_lineitem_id'), ['lineitem_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('demo_score', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_demo_score_lineitem_id'))
    op.drop_table('demo_score')
    op.drop_table('demo_lineitem')
    op.drop_table('demo_link')
    op.drop_table('demo_key')
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.drop_column('is_demo')
