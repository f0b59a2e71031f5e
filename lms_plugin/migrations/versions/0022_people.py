"""people: index role grants by (organisation, role) for the people list's role filter

Revision ID: 0022_people
Revises: 0021_reports
Create Date: 2026-11-30 03:35:00

``/admin/users?role=author`` read the organisation's people in name order and probed
``role_grant`` for each (390-800 ms at 50,000 people, issue 18 item 5): the only index on
``role_grant`` leads with ``user_id``. This one finds a role's holders directly.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = "0022_people"
down_revision = "0021_reports"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_role_grant_org_role", "role_grant",
                    ["organisation_id", "role", "user_id"], unique=False)


def downgrade():
    op.drop_index("ix_role_grant_org_role", table_name="role_grant")
