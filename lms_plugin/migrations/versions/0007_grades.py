"""grades: the organisation's grade policy (which graded attempt the LMS gradebook shows)

Revision ID: 0007_grades
Revises: 0006
Create Date: 2026-11-30 00:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_grades'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Existing organisations get the default, "highest graded attempt of the current
    # validity period" (issue 9 item 2).
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grade_policy', sa.String(length=20),
                                      server_default='highest', nullable=False))
        batch_op.create_check_constraint(
            op.f('ck_organisation_grade_policy_known'), "grade_policy IN ('highest', 'most_recent')")


def downgrade():
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_organisation_grade_policy_known'), type_='check')
        batch_op.drop_column('grade_policy')
