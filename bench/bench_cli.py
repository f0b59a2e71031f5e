"""How fast the console script answers: wall time and peak memory per command, beside a bare
``python -c pass``.

    .venv/bin/python bench/bench_cli.py [--runs 10] [--code DIR]

Each command runs ``--runs`` times in a fresh process, the commands taking turns (so they
share the machine's slow and fast spells); the median wall time and the peak resident memory
(``ru_maxrss`` of that child, from ``os.wait4``) are printed. ``--code DIR`` measures another
checkout's ``lms_plugin`` (e.g. ``git worktree add /tmp/before <commit>``) through
``PYTHONPATH``, for a before/after comparison with the same interpreter and libraries.
``DATABASE_URL`` points at an SQLite file in a temporary folder (a version that creates the
app for ``--help`` connects to it; this one does not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = "import sys; from lms_plugin.cli import main; sys.argv[0] = 'lms-plugin'; main()"
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "lms-plugin --help": ["-c", MAIN, "--help"],
    "lms-plugin --version": ["-c", MAIN, "--version"],
    "lms-plugin content --help": ["-c", MAIN, "content", "--help"],
}


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One child, run in the scratch folder (not a checkout: ``-c`` puts the current folder
    first on sys.path): (seconds, peak MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=env["BENCH_CLI_SCRATCH"])
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{args} exited with {child.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--code", type=Path, help="checkout whose lms_plugin is measured")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_", "FLASK_"))}
    scratch = tempfile.mkdtemp(prefix="bench-cli-")
    env["DATABASE_URL"] = f"sqlite:///{scratch}/bench.db"
    env["BENCH_CLI_SCRATCH"] = scratch
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the file cache once
        run_once(command, env)
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            samples[name].append(run_once(command, env))
    base = statistics.median(t for t, _ in samples["python -c pass"])
    print(f"{'command':28} {'median s':>9} {'x pass':>7} {'peak MiB':>9}")
    for name, rows in samples.items():
        median = statistics.median(t for t, _ in rows)
        peak = max(m for _, m in rows)
        print(f"{name:28} {median:9.3f} {median / base:7.1f} {peak:9.1f}")


if __name__ == "__main__":
    main()
