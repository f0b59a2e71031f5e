"""The command line a person types (issue 12 item 11): fast help, a version, one clear line
instead of a traceback, empty paths refused, no empty output files, a fresh install explained.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from lms_plugin.accounts.models import Organisation
from lms_plugin.cli import COMMANDS, cli, load_command
from lms_plugin.config import ConfigError, load_config
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiToolKey

GIFT_NOTHING = "::q1:: Describe the downtime procedure.\n"  # a description: not convertible
MOODLE_NOTHING = ('<?xml version="1.0"?><quiz><question type="essay"><name><text>Essay</text>'
                  '</name><questiontext format="html"><text>Why?</text></questiontext>'
                  '</question></quiz>')


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_help_lists_every_command_without_importing_the_heavy_libraries():
    """``lms-plugin --help`` imports neither SQLAlchemy, Alembic nor any domain package:
    what made it take 3.2 s and 132 MiB (bench/bench_cli.py measures the time)."""
    code = ("import sys\n"
            "from lms_plugin.cli import cli\n"
            "cli.main(['--help'], prog_name='lms-plugin', standalone_mode=False)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'alembic', 'flask_migrate', 'flask_sqlalchemy', 'redis', 'rq', "
            "'pylti1p3') or m.startswith(('lms_plugin.accounts', 'lms_plugin.catalog', "
            "'lms_plugin.lti', 'lms_plugin.jobs')))\n"
            "print('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert "HEAVY []" in result.stdout, result.stdout
    for name in COMMANDS:
        assert f"\n  {name} " in result.stdout


def test_the_help_table_matches_the_commands_and_the_app_registers_them(app):
    for name, (_target, help_text) in COMMANDS.items():
        assert load_command(name).get_short_help_str(limit=1000) == help_text, name
        assert app.cli.get_command(None, name) is load_command(name) or name == "db"
    assert set(app.cli.list_commands(None)) == set(COMMANDS)


def test_version_prints_the_tools_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"lms-plugin {version('lms_plugin')}\n"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "", "../etc/passwd", "EST5EDT x"])
def test_an_unknown_default_time_zone_is_refused_at_start(tmp_path, zone):
    with pytest.raises(ConfigError, match="LMS_DEFAULT_TIMEZONE must be an IANA time zone"):
        load_config(tmp_path, {"LMS_DEFAULT_TIMEZONE": zone})
    assert load_config(tmp_path, {"LMS_DEFAULT_TIMEZONE": "Europe/Paris"})[
        "LMS_DEFAULT_TIMEZONE"] == "Europe/Paris"


def test_the_console_script_refuses_a_bad_time_zone_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LMS_DEFAULT_TIMEZONE": "Mars/Base"}
    result = subprocess.run([sys.executable, "-m", "lms_plugin", "db", "current"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("lms-plugin: error: LMS_DEFAULT_TIMEZONE must be")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_export_to_an_unwritable_place_is_one_line_and_writes_nothing(app, tmp_path, factory):
    factory.organisation()  # organisations are never created by a command (issue 12.1)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    before = _count(app, Organisation)
    result = app.test_cli_runner().invoke(args=["content", "export", str(blocker / "out")])
    assert result.exit_code == 1
    assert f"cannot write to {blocker / 'out'}: Not a directory" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _count(app, Organisation) == before


def test_console_script_turns_an_os_error_into_one_line(tmp_path):
    """The safety net in ``main`` (any OSError a command did not name itself)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = ("import sys\nimport click\nfrom lms_plugin import cli\ntarget = sys.argv[1]\n"
            "cli.cli.add_command(click.command('boom')(lambda: open(target, 'w')))\n"
            "sys.argv[1:] = ['boom']\ncli.main()\n")
    result = subprocess.run([sys.executable, "-c", code, str(blocker / "x")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"lms-plugin: error: {blocker / 'x'}: Not a directory\n"


def test_validate_a_missing_folder_names_it_once(app):
    result = app.test_cli_runner().invoke(args=["content", "validate", "/nonexistent-lms"])
    assert result.exit_code == 2
    assert "Directory '/nonexistent-lms' does not exist." in result.output
    assert result.output.count("nonexistent-lms") == 1


def test_a_problem_about_the_folder_itself_is_not_prefixed_twice(app, tmp_path, capsys):
    from lms_plugin.catalog.cli import _report
    from lms_plugin.catalog.content_format import load_content

    missing = tmp_path / "gone"
    _report(str(missing), load_content(missing))
    err = capsys.readouterr().err
    assert err == f"{missing}: not a directory\n"


@pytest.mark.parametrize("args", [
    ["content", "validate", ""],
    ["content", "import", ""],
    ["content", "export", ""],
    ["content", "export", "  "],
    ["content", "import-gift", "BANK", "-o", ""],
    ["content", "import-moodle-xml", "BANK", "-o", ""],
    ["content", "export-gift", "some-module", "-o", ""],
    ["content", "export-moodle-xml", "some-module", "-o", ""],
])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(app, tmp_path, args):
    bank = tmp_path / "bank.txt"
    bank.write_text(GIFT_NOTHING)
    args = [str(bank) if a == "BANK" else a for a in args]
    before = _count(app, Organisation)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2, result.output
    assert "an empty path is not allowed" in result.output
    assert _count(app, Organisation) == before


@pytest.mark.parametrize(("command", "text", "name"), [
    ("import-gift", GIFT_NOTHING, "bank.txt"),
    ("import-moodle-xml", MOODLE_NOTHING, "bank.xml"),
])
def test_a_bank_where_nothing_converts_leaves_no_output_file(app, tmp_path, command, text,
                                                             name):
    bank = tmp_path / name
    bank.write_text(text)
    out = tmp_path / "questions.yaml"
    result = app.test_cli_runner().invoke(args=["content", command, str(bank), "-o", str(out)])
    assert result.exit_code == 1
    assert "0 question(s) converted, 1 not converted" in result.output
    assert f"Nothing converted: {out} was not written." in result.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    out.write_text("questions: []  # kept\n")  # an earlier result is not clobbered
    app.test_cli_runner().invoke(args=["content", command, str(bank), "-o", str(out)])
    assert out.read_text() == "questions: []  # kept\n"


def test_keys_list_on_a_fresh_install_says_what_will_happen(app):
    result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0
    assert "No signing keys yet" in result.output and "keys rotate" in result.output
    assert _count(app, LtiToolKey) == 0  # listing does not create one


def test_worker_with_an_unreachable_redis_is_one_clear_error(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://:secret@127.0.0.1:1/0")
    for args in (["worker", "--once"], ["worker"]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 1, result.output
        assert "Redis at 127.0.0.1:1/0 is unreachable" in result.output
        assert "--in-process" in result.output and "secret" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit)


def test_shipped_content_and_migrations_are_found_inside_the_package():
    from lms_plugin import health
    from lms_plugin.catalog.cli import SHIPPED_CONTENT

    package = Path(__import__("lms_plugin").__file__).parent
    assert package / "content" == SHIPPED_CONTENT
    assert (SHIPPED_CONTENT / "modules").is_dir() and (SHIPPED_CONTENT / "README.md").is_file()
    assert package / "migrations" == health.MIGRATIONS_DIR
    assert (health.MIGRATIONS_DIR / "env.py").is_file()
