"""Content files: numbers beyond what the database (or a date) holds and over-long lesson
names are reported as problems, not cut and not a driver error at import (issue 9, item 6)."""

from __future__ import annotations

from sqlalchemy import func, select

from lms_plugin.catalog.models import Lesson, Module
from lms_plugin.extensions import db
from tests.catalog.test_content_format import BASE, LESSON, build, problems


def test_out_of_range_numbers_and_long_lesson_names_are_problems(tmp_path):
    module_yaml = BASE.replace("estimated_minutes: 10",
                               "estimated_minutes: 99999999999999999999\nvalidity_months: 5000")
    long_name = "-".join(["word"] * 25)  # 124 characters after the number
    root = build(tmp_path, module_yaml, lessons={"01-introduction.md": LESSON,
                                                 f"02-{long_name}.md": LESSON})
    found = problems(root)
    assert "modules/demo/module.yaml:5: 'estimated_minutes' is 99999999999999999999; it must " \
           "be at most 2147483647" in found
    assert "modules/demo/module.yaml:6: 'validity_months' is 5000; it must be between 1 and " \
           "1200" in found
    assert f"modules/demo/lessons/02-{long_name}.md: the lesson name after the number is " \
           "124 characters long; at most 100 are allowed" in found
    assert len(found) == 3, found


def test_cli_import_of_out_of_range_content_writes_nothing(app, tmp_path):
    root = build(tmp_path, BASE.replace("estimated_minutes: 10",
                                        "estimated_minutes: 3000000000"))
    result = app.test_cli_runner().invoke(args=["content", "import", str(root)])
    assert result.exit_code != 0
    assert "it must be at most 2147483647" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Module)) == 0
        assert db.session.scalar(select(func.count()).select_from(Lesson)) == 0
