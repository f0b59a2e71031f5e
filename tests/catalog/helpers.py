"""Test helpers for catalog: a minimal valid content tree, built on disk or imported."""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import Flask

FIXTURES = Path(__file__).parent / "fixtures"
VALID = FIXTURES / "valid"
SAMPLES = Path(__file__).parent / "samples"


def copy_valid(tmp_path: Path) -> Path:
    """A writable copy of the valid fixture tree (two systems, two modules, one image)."""
    root = tmp_path / "content"
    shutil.copytree(VALID, root)
    return root


def import_valid(app: Flask, org: str = "General Hospital"):
    """Import the valid fixture into ``org`` and commit; returns the summary."""
    from lms_plugin.accounts.services import get_or_create_organisation
    from lms_plugin.catalog import services
    from lms_plugin.catalog.content_format import load_content
    from lms_plugin.extensions import db

    with app.app_context():
        bundle = load_content(VALID)
        assert bundle.ok, bundle.problems
        summary = services.import_content(bundle, get_or_create_organisation(org))
        db.session.commit()
        return summary


def sample_asset(app: Flask, org: str = "General Hospital") -> tuple[int, str]:
    """(module id, image path) of an imported lesson image in ``org``."""
    from lms_plugin.accounts.services import get_or_create_organisation
    from lms_plugin.catalog import services

    import_valid(app, org)
    with app.app_context():
        module = services.get_module(get_or_create_organisation(org).id, "safe-ordering")
        return module.id, "images/banner.svg"
