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


# ------------------------------------------------------------- one configuration source

PACKAGE = ROOT / "lms_plugin"


def _modules():
    import ast

    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def test_only_config_reads_the_environment():
    """Every setting is parsed in lms_plugin/config.py: no other module reads ``os.environ``
    or ``os.getenv`` (at import time or call time), however it imports them."""
    import ast

    offenders = []
    for name, tree in _modules():
        if name == "lms_plugin/config.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {
                    "environ", "environb", "getenv", "getenvb", "putenv"} and isinstance(
                    node.value, ast.Name) and node.value.id == "os":
                offenders.append(f"{name}:{node.lineno} os.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                    alias.name in {"environ", "getenv", "environb", "getenvb"}
                    for alias in node.names):
                offenders.append(f"{name}:{node.lineno} from os import …")
    assert not offenders, offenders


def test_every_setting_the_code_reads_is_parsed_and_documented(tmp_path):
    """A ``config["LMS_…"]`` / ``config.get("LTI_…", default)`` anywhere in the package names a
    setting that load_config parses (so no default is buried where it is read) and that
    ENV_VARS lists (so the README documents it)."""
    import ast

    parsed = load_config(tmp_path, {})
    read = set()
    for _, tree in _modules():
        for node in ast.walk(tree):
            key = None
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "config"):
                key = node.slice
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in {"get", "setdefault"}
                  and isinstance(node.func.value, ast.Attribute)
                  and node.func.value.attr == "config" and node.args):
                key = node.args[0]
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and \
                    key.value.startswith(("LMS_", "LTI_", "SESSION_STORE_", "MAIL_")):
                read.add(key.value)
    assert read, "the scan found no settings: it is broken"
    assert read <= set(parsed), sorted(read - set(parsed))
    assert read <= set(ENV_VARS), sorted(read - set(ENV_VARS))


def test_job_and_lti_settings_are_parsed_at_start(tmp_path):
    cfg = load_config(tmp_path, {})
    assert cfg["LMS_JOB_GIVE_UP_AFTER"] == 24 * 3600 and cfg["LMS_JOB_LEASE"] == 300
    assert cfg["LMS_JOB_QUEUE"] == "lms-outbox"
    assert (cfg["LTI_CLOCK_SKEW"], cfg["LTI_REGISTRATION_CACHE_SECONDS"],
            cfg["LTI_COOKIE_CHECK"], cfg["LTI_STORE_PREFIX"]) == (60, 5, True, "lms:lti:")
    cfg = load_config(tmp_path, {"LMS_JOB_LEASE": "10m", "LMS_JOB_BACKOFF_BASE": "0",
                                 "LMS_JOB_QUEUE": " ward-a ", "LTI_CLOCK_SKEW": "5",
                                 "LTI_COOKIE_CHECK": "0", "LTI_STORE_PREFIX": "a:lti:"})
    assert cfg["LMS_JOB_LEASE"] == 600 and cfg["LMS_JOB_BACKOFF_BASE"] == 0
    assert (cfg["LMS_JOB_QUEUE"], cfg["LTI_CLOCK_SKEW"], cfg["LTI_COOKIE_CHECK"],
            cfg["LTI_STORE_PREFIX"]) == ("ward-a", 5, False, "a:lti:")


@pytest.mark.parametrize(("env", "message"), [
    ({"LMS_JOB_LEASE": "soon"}, "LMS_JOB_LEASE: 'soon' is not a duration"),
    ({"LMS_JOB_KEEP": "-1d"}, "LMS_JOB_KEEP"),
    ({"LMS_SESSION_IDLE": "0"}, "LMS_SESSION_IDLE: '0' is not a duration; use a positive"),
    ({"LTI_CLOCK_SKEW": "a minute"}, "LTI_CLOCK_SKEW must be a number of seconds"),
    ({"LTI_REGISTRATION_CACHE_SECONDS": "-5"}, "LTI_REGISTRATION_CACHE_SECONDS"),
    ({"LTI_COOKIE_CHECK": "maybe"}, "LTI_COOKIE_CHECK must be 1 or 0"),
    ({"LMS_PASSWORD_HASH_PROFILE": "paranoid"}, "must be standard or fast"),
    ({"LMS_ENV": "production", "SECRET_KEY": "x" * 40, "DATABASE_URL": "postgresql://x/y",
      "LMS_BASE_URL": "https://t.example.org", "LMS_PASSWORD_HASH_PROFILE": "fast"},
     "fast is for tests only"),
])
def test_bad_new_settings_are_refused(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env)


def test_password_hash_profile(tmp_path):
    assert load_config(tmp_path, {})["LMS_PASSWORD_HASH_PROFILE"] == "standard"
    production = {"LMS_ENV": "production", "SECRET_KEY": "x" * 40,
                  "DATABASE_URL": "postgresql://x/y", "LMS_BASE_URL": "https://t.example.org"}
    assert load_config(tmp_path, production)["LMS_PASSWORD_HASH_PROFILE"] == "standard"
    assert load_config(tmp_path, {"LMS_PASSWORD_HASH_PROFILE": "Fast"})[
        "LMS_PASSWORD_HASH_PROFILE"] == "fast"
