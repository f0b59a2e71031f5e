"""signoff: clinical sign-off before publish, critical questions, observed objectives

Revision ID: 0019_signoff
Revises: 0018_admin
Create Date: 2026-11-30 03:30:00

Issue 17. An organisation names the reviewers a module needs (``signoff_reviewer``: a role
name held by people in ``signoff_role_holder``, or one named person); each approves an exact
version (``signoff_approval`` keeps the version's content hash); ``catalog.services.
publish_version`` refuses a version until every one has. ``question.critical``: a wrong
answer fails the attempt whatever its score. ``module_version.observed_objectives``:
objectives a quiz cannot show, for the later skills checklist (existing rows get ``[]``).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019_signoff'
down_revision = "0018_admin"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('question', schema=None) as batch_op:
        batch_op.add_column(sa.Column('critical', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('observed_objectives', sa.JSON(), nullable=True))
    op.execute("UPDATE module_version SET observed_objectives = '[]'")
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.alter_column('observed_objectives', existing_type=sa.JSON(), nullable=False)

    op.create_table(
        'signoff_reviewer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('module_id', sa.Integer(), nullable=True),
        sa.Column('role_name', sa.String(length=100), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['module_id'], ['module.id'], ondelete='CASCADE',
                                name=op.f('fk_signoff_reviewer_module_id_module')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'],
                                name=op.f('fk_signoff_reviewer_organisation_id_organisation')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE',
                                name=op.f('fk_signoff_reviewer_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signoff_reviewer')),
        sa.UniqueConstraint('organisation_id', 'module_id', 'role_name', 'user_id',
                            name=op.f('uq_signoff_reviewer_organisation_id_module_id_role_name_user_id')),
    )
    with op.batch_alter_table('signoff_reviewer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signoff_reviewer_organisation_id'),
                              ['organisation_id'], unique=False)

    op.create_table(
        'signoff_role_holder',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('role_name', sa.String(length=100), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'],
                                name=op.f('fk_signoff_role_holder_organisation_id_organisation')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE',
                                name=op.f('fk_signoff_role_holder_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signoff_role_holder')),
        sa.UniqueConstraint('organisation_id', 'role_name', 'user_id',
                            name=op.f('uq_signoff_role_holder_organisation_id_role_name_user_id')),
    )
    with op.batch_alter_table('signoff_role_holder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signoff_role_holder_user_id'), ['user_id'],
                              unique=False)

    op.create_table(
        'signoff_approval',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('reviewer_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('reviewer_name', sa.String(length=200), nullable=False),
        sa.Column('role_name', sa.String(length=100), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('approved_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['reviewer_id'], ['signoff_reviewer.id'], ondelete='CASCADE',
                                name=op.f('fk_signoff_approval_reviewer_id_signoff_reviewer')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='SET NULL',
                                name=op.f('fk_signoff_approval_user_id_user_account')),
        sa.ForeignKeyConstraint(['version_id'], ['module_version.id'], ondelete='CASCADE',
                                name=op.f('fk_signoff_approval_version_id_module_version')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signoff_approval')),
        sa.UniqueConstraint('version_id', 'reviewer_id',
                            name=op.f('uq_signoff_approval_version_id_reviewer_id')),
    )
    with op.batch_alter_table('signoff_approval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signoff_approval_reviewer_id'), ['reviewer_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('signoff_approval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signoff_approval_reviewer_id'))
    op.drop_table('signoff_approval')
    with op.batch_alter_table('signoff_role_holder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signoff_role_holder_user_id'))
    op.drop_table('signoff_role_holder')
    with op.batch_alter_table('signoff_reviewer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signoff_reviewer_organisation_id'))
    op.drop_table('signoff_reviewer')
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.drop_column('observed_objectives')
    with op.batch_alter_table('question', schema=None) as batch_op:
        batch_op.drop_column('critical')
