"""No code decides anything on ``rowcount`` (issue 9).

PEP 249 drivers may answer -1, and SQLAlchemy 2.1 does for ``INSERT … ON CONFLICT`` on
PostgreSQL, which refused every LTI launch there without Redis. What a statement changed is
read from ``RETURNING``; the behaviour of each such place is tested under
:func:`tests.dbapi.rowcount_unknown`. This keeps new code from bringing the fault back.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_application_code_never_reads_rowcount():
    offenders = []
    for folder in ("lms_plugin", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                          if isinstance(node, ast.Attribute) and node.attr == "rowcount"]
    assert offenders == [], "use RETURNING instead of rowcount: " + ", ".join(offenders)
