from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lms_plugin.config import ENV_VARS, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_are_safe_for_development(tmp_path):
    cfg = load_config(tmp_path, {})
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'lms_plugin.db'}"
    assert cfg["REDIS_URL"] is None
    assert cfg["LMS_BASE_URL"] == "http://127.0.0.1:5000"
    # the generated secret is kept so sessions survive a restart
    assert len(cfg["SECRET_KEY"]) >= 32
    assert load_config(tmp_path, {})["SECRET_KEY"] == cfg["SECRET_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_roster_min_share_reads_fractions_and_percentages(tmp_path):
    assert load_config(tmp_path, {})["LMS_ROSTER_MIN_SHARE"] == 0.5
    assert load_config(tmp_path, {"LMS_ROSTER_MIN_SHARE": "30%"})["LMS_ROSTER_MIN_SHARE"] \
        == 0.3
    assert load_config(tmp_path, {"LMS_ROSTER_MIN_SHARE": "0"})["LMS_ROSTER_MIN_SHARE"] == 0


def test_postgres_scheme_is_normalised_to_psycopg(tmp_path):
    cfg = load_config(tmp_path, {"DATABASE_URL": "postgresql://u:p@db:5432/lms"})
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db:5432/lms"


def test_https_base_url_makes_iframe_cookies(tmp_path):
    cfg = load_config(tmp_path, {"LMS_BASE_URL": "https://training.example.org/"})
    assert cfg["LMS_BASE_URL"] == "https://training.example.org"
    assert cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["SESSION_COOKIE_SAMESITE"] == "None"


@pytest.mark.parametrize(("env", "message"), [
    ({"LMS_ENV": "production", "DATABASE_URL": "postgresql://x/y",
      "LMS_BASE_URL": "https://t.example.org"}, "SECRET_KEY is not set"),
    ({"LMS_ENV": "production", "SECRET_KEY": "x" * 40,
      "LMS_BASE_URL": "https://t.example.org"}, "must point at PostgreSQL"),
    ({"LMS_ENV": "production", "SECRET_KEY": "x" * 40, "DATABASE_URL": "postgresql://x/y",
      "LMS_BASE_URL": "http://t.example.org"}, "must use https://"),
    ({"LMS_ENV": "production", "SECRET_KEY": "short", "DATABASE_URL": "postgresql://x/y",
      "LMS_BASE_URL": "https://t.example.org"}, "at least 32 characters"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL is malformed"),
    ({"DATABASE_URL": "mysql://x/y"}, "unsupported driver"),
    ({"LMS_ENV": "staging"}, "LMS_ENV must be"),
    ({"LMS_BASE_URL": "tool.example.org"}, "LMS_BASE_URL must start"),
    ({"LMS_PROXY_FIX": "yes"}, "LMS_PROXY_FIX"),
    ({"LMS_ROSTER_MIN_SHARE": "half"}, "LMS_ROSTER_MIN_SHARE must be a fraction"),
    ({"LMS_ROSTER_MIN_SHARE": "1.5"}, "LMS_ROSTER_MIN_SHARE must be between 0 and 1"),
])
def test_bad_configuration_is_refused(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env)


def _cli(env_extra: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env_extra}
    return subprocess.run([sys.executable, "-m", "lms_plugin", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "expected"), [
    ({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}, "database is unreachable"),
    ({"DATABASE_URL": "::::"}, "DATABASE_URL is malformed"),
    ({"LMS_ENV": "production", "DATABASE_URL": "postgresql://x/y",
      "LMS_BASE_URL": "https://t.example.org"}, "SECRET_KEY is not set"),
])
def test_cli_prints_one_clear_line_and_exits_nonzero(tmp_path, env, expected):
    result = _cli(env, "db", "current", cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lms-plugin: error:")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_readme_documents_every_environment_variable():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M))
    assert set(ENV_VARS) <= documented, sorted(set(ENV_VARS) - documented)
