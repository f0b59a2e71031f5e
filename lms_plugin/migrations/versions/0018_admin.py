"""admin: audit log filter indexes; the audit table is append-only on PostgreSQL

Revision ID: 0018_admin
Revises: 0017_authoring
Create Date: 2026-11-30 03:30:00

The audit page (``/admin/audit``) filters by person, action and target and pages newest
first on (created_at, id) (keyset). One index per filter, each leading with the
organisation and ending with (created_at, id), serves a page at a million events
(bench/bench_scale.py). On PostgreSQL a trigger refuses UPDATE and DELETE on
``audit_event`` (frozen here; ``accounts.models.AUDIT_APPEND_ONLY_DDL`` is the same text, which
``create_all`` runs).
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0018_admin'
down_revision = "0017_authoring"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_audit_event_org_actor": ["organisation_id", "actor_id", "created_at", "id"],
    "ix_audit_event_org_action": ["organisation_id", "action", "created_at", "id"],
    "ix_audit_event_org_target": ["organisation_id", "target_type", "target_id",
                                  "created_at", "id"],
}

CREATE_FUNCTION = """CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = 'audit_event is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql"""
CREATE_TRIGGER = """CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"""


def upgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE_FUNCTION)
        op.execute(CREATE_TRIGGER)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
