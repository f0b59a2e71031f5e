"""A normal (non-editable) install works on its own: the wheel carries the Alembic migrations
and the shipped content, and ``lms-plugin db upgrade`` + ``lms-plugin setup`` run from a
folder outside the source tree (issue 11 item 9).

The wheel is built offline from a copy of the source (``pip wheel --no-deps
--no-build-isolation``: setuptools and wheel come from the lock) and installed with
``--no-deps`` into a fresh venv whose dependencies are this venv's site-packages, added as a
plain path (so this venv's editable ``lms_plugin`` finder is not active there: only the wheel's
copy can be imported).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__",
                              "instance", "tests", "bench", ".pytest_cache", ".ruff_cache",
                              "node_modules")

pytestmark = pytest.mark.wheel


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def test_wheel_installs_and_sets_up_a_database_outside_the_source_tree(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=SKIP)
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", tmp_path / "dist", source, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("lms_plugin-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=tmp_path).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", wheel, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(elsewhere),
           "DATABASE_URL": f"sqlite:///{elsewhere / 'lms.db'}"}
    where = _run(python, "-c", "import lms_plugin; print(lms_plugin.__file__)",
                 cwd=elsewhere, env=env).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's copy, not the source tree

    _run(venv / "bin" / "lms-plugin", "db", "upgrade", cwd=elsewhere, env=env)
    setup = _run(venv / "bin" / "lms-plugin", "setup", cwd=elsewhere, env=env)
    assert "Shipped content:" in setup.stdout

    shipped = sorted(p.name for p in (ROOT / "lms_plugin" / "content" / "modules").iterdir()
                     if p.is_dir())
    heads = [p.stem for p in (ROOT / "lms_plugin" / "migrations" / "versions").glob("*.py")]
    with sqlite3.connect(elsewhere / "lms.db") as conn:
        slugs = sorted(row[0] for row in conn.execute("SELECT slug FROM module"))
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert shipped and slugs == shipped
    assert revision in heads
