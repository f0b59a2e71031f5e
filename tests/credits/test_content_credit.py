"""``credit:`` in module.yaml: validated with file:line by ``content validate``, stored as
the module's CE activity by ``content import`` (issue 15, "edited ... in the content
files")."""

from __future__ import annotations

import textwrap

import pytest
from sqlalchemy import func, select

from lms_plugin.credits.models import CreditActivity, CreditOffer
from lms_plugin.extensions import db
from tests.catalog.helpers import copy_valid
from tests.credits.helpers import SPEC


@pytest.fixture(autouse=True)
def _first_organisation(factory) -> None:
    factory.organisation("Default Health System")


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["content", *args])


def _with_credit(tmp_path, block: str):
    root = copy_valid(tmp_path)
    module_yaml = root / "modules" / "safe-ordering" / "module.yaml"
    module_yaml.write_text(module_yaml.read_text() + "credit:\n"
                           + textwrap.indent(block, "  "))
    return root, module_yaml


def test_import_creates_then_updates_the_activity_without_a_new_version(app, tmp_path):
    root, module_yaml = _with_credit(tmp_path, SPEC)
    result = run(app, "import", str(root))
    assert result.exit_code == 0, result.output
    with app.app_context():
        activity = db.session.scalar(select(CreditActivity))
        assert activity.title == "Safe CPOE ordering: CE edition"
        assert sorted(o.credit_type for o in activity.offers) == [
            "acpe", "ama_pra_1", "ancc", "cphims", "other"]
        assert activity.acpe_audience == "pharmacist"
    module_yaml.write_text(module_yaml.read_text().replace("cphims: 1.5", "cphims: 3"))
    result = run(app, "import", str(root))
    assert result.exit_code == 0, result.output
    assert "safe-ordering: unchanged" in result.output  # credit is not module content
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CreditActivity)) == 1
        offer = db.session.scalar(select(CreditOffer).where(
            CreditOffer.credit_type == "cphims"))
        assert float(offer.max_credits) == 3.0


def test_validate_reports_credit_mistakes_with_file_and_line(app, tmp_path):
    root, module_yaml = _with_credit(tmp_path, SPEC.replace("ancc: 1.5", "ancc: 0.3"))
    lines = module_yaml.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if "ancc: 0.3" in text)
    result = run(app, "validate", str(root))
    assert result.exit_code == 1
    assert f"{root}/modules/safe-ordering/module.yaml:{line}: the maximum for 'ancc'" \
        in result.output
    result = run(app, "import", str(root))
    assert result.exit_code != 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CreditActivity)) == 0
