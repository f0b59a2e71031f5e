from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _export_dir(app, tmp_path, monkeypatch):
    """Background export files go to this test's temporary folder, not instance/."""
    monkeypatch.setitem(app.config, "REPORTS_EXPORT_DIR", str(tmp_path / "exports"))
