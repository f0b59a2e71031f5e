"""assign: staff profile, assignment rules, assignments, extra attempts, go-live (issue 14)

Revision ID: 0014_assign
Revises: 0013_perf
Create Date: 2026-11-30 03:40:00
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014_assign'
down_revision = "0013_perf"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expiring_soon_days', sa.Integer(), server_default='30',
                                      nullable=False))
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('employee_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hire_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('manager_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('left_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_user_account_manager_id'), ['manager_id'],
                              unique=False)
        batch_op.create_unique_constraint(
            batch_op.f('uq_user_account_organisation_id_employee_id'),
            ['organisation_id', 'employee_id'])
        batch_op.create_foreign_key(batch_op.f('fk_user_account_manager_id_user_account'),
                                    'user_account', ['manager_id'], ['id'],
                                    ondelete='SET NULL')
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('go_live_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        'assignment_rule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('module_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('due_days', sa.Integer(), nullable=True),
        sa.Column('due_on', sa.DateTime(timezone=True), nullable=True),
        sa.Column('recurrence_months', sa.Integer(), nullable=True),
        sa.Column('reopen_on_retraining', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('(due_days IS NULL) <> (due_on IS NULL)',
                           name=op.f('ck_assignment_rule_one_due')),
        sa.CheckConstraint('due_days IS NULL OR due_days >= 0',
                           name=op.f('ck_assignment_rule_due_days_positive')),
        sa.CheckConstraint('recurrence_months IS NULL OR recurrence_months > 0',
                           name=op.f('ck_assignment_rule_recurrence_positive')),
        sa.ForeignKeyConstraint(['module_id'], ['module.id'], ondelete='CASCADE',
                                name=op.f('fk_assignment_rule_module_id_module')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'],
                                name=op.f('fk_assignment_rule_organisation_id_organisation')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment_rule')),
    )
    op.create_index(op.f('ix_assignment_rule_module_id'), 'assignment_rule', ['module_id'])
    op.create_index('ix_assignment_rule_org_removed', 'assignment_rule',
                    ['organisation_id', 'removed_at'])

    op.create_table(
        'rule_audience',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('value', sa.String(length=100), nullable=False),
        sa.CheckConstraint("kind IN ('facility', 'department', 'job_role')",
                           name=op.f('ck_rule_audience_kind_known')),
        sa.ForeignKeyConstraint(['rule_id'], ['assignment_rule.id'], ondelete='CASCADE',
                                name=op.f('fk_rule_audience_rule_id_assignment_rule')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_audience')),
        sa.UniqueConstraint('rule_id', 'kind', 'value',
                            name=op.f('uq_rule_audience_rule_id_kind_value')),
    )

    op.create_table(
        'assignment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('module_id', sa.Integer(), nullable=False),
        sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_reason', sa.String(length=20), nullable=True),
        sa.CheckConstraint("closed_reason IS NULL OR closed_reason IN "
                           "('rule_removed', 'module_retired', 'left', 'audience')",
                           name=op.f('ck_assignment_closed_reason_known')),
        sa.ForeignKeyConstraint(['module_id'], ['module.id'], ondelete='CASCADE',
                                name=op.f('fk_assignment_module_id_module')),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'],
                                name=op.f('fk_assignment_organisation_id_organisation')),
        sa.ForeignKeyConstraint(['rule_id'], ['assignment_rule.id'], ondelete='CASCADE',
                                name=op.f('fk_assignment_rule_id_assignment_rule')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE',
                                name=op.f('fk_assignment_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment')),
    )
    op.create_index('ix_assignment_open_rule_user', 'assignment', ['rule_id', 'user_id'],
                    unique=True, sqlite_where=sa.text('closed_at IS NULL'),
                    postgresql_where=sa.text('closed_at IS NULL'))
    op.create_index('ix_assignment_user_module', 'assignment', ['user_id', 'module_id'])
    op.create_index('ix_assignment_org_closed', 'assignment', ['organisation_id', 'closed_at'])

    op.create_table(
        'attempt_grant',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('module_id', sa.Integer(), nullable=False),
        sa.Column('extra', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('granted_by_id', sa.Integer(), nullable=True),
        sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('extra > 0', name=op.f('ck_attempt_grant_extra_positive')),
        sa.ForeignKeyConstraint(['granted_by_id'], ['user_account.id'], ondelete='SET NULL',
                                name=op.f('fk_attempt_grant_granted_by_id_user_account')),
        sa.ForeignKeyConstraint(['module_id'], ['module.id'], ondelete='CASCADE',
                                name=op.f('fk_attempt_grant_module_id_module')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE',
                                name=op.f('fk_attempt_grant_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attempt_grant')),
    )
    op.create_index('ix_attempt_grant_user_module', 'attempt_grant', ['user_id', 'module_id'])


def downgrade():
    op.drop_table('attempt_grant')
    op.drop_table('assignment')
    op.drop_table('rule_audience')
    op.drop_table('assignment_rule')
    with op.batch_alter_table('module_version', schema=None) as batch_op:
        batch_op.drop_column('go_live_at')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_user_account_manager_id_user_account'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_user_account_organisation_id_employee_id'),
                                 type_='unique')
        batch_op.drop_index(batch_op.f('ix_user_account_manager_id'))
        batch_op.drop_column('left_at')
        batch_op.drop_column('manager_id')
        batch_op.drop_column('hire_date')
        batch_op.drop_column('employee_id')
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.drop_column('expiring_soon_days')
