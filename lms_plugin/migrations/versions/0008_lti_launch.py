"""lti launch: course-scoped LTI rights; organisation-wide roles only by registration setting

Adds ``lti_platform.grant_org_roles`` (default off) and ``role_grant.source`` (``local`` for
an admin's or the CLI's grant, ``lti`` for one derived from launches, which every launch
refreshes). Existing grants of people who only ever arrived by LTI (an identity, no local
credential: nothing else grants them roles) are marked ``lti``, and their organisation-wide
roles other than ``learner`` are removed: they came from the old mapping that made a
course's Instructor, TeachingAssistant or Mentor an author of the whole organisation
(issue 10 item 5). Their rights in their own courses come from their enrolments now.

Revision ID: 0008_lti_launch
Revises: 0007_grades
"""
from alembic import op
import sqlalchemy as sa


revision = "0008_lti_launch"
down_revision = "0007_grades"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("lti_platform", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grant_org_roles", sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
    with op.batch_alter_table("role_grant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=10), server_default="local",
                                      nullable=False))
        batch_op.create_check_constraint(op.f("ck_role_grant_source_known"), "source IN ('local', 'lti')")
    op.execute(
        "UPDATE role_grant SET source = 'lti' "
        "WHERE user_id IN (SELECT user_id FROM lti_identity) "
        "AND user_id NOT IN (SELECT user_id FROM local_credential)")
    op.execute("DELETE FROM role_grant WHERE source = 'lti' AND role <> 'learner'")


def downgrade():
    # Removed LTI-derived grants are not restored (they were the fault being fixed).
    with op.batch_alter_table("role_grant", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_role_grant_source_known"), type_="check")
        batch_op.drop_column("source")
    with op.batch_alter_table("lti_platform", schema=None) as batch_op:
        batch_op.drop_column("grant_org_roles")
