"""The lock files stay in step with pyproject.toml (issue 9: installs are reproducible).

``make run`` installs ``requirements.txt`` and ``make test`` / CI ``requirements-test.txt``
with ``--require-hashes``; a dependency added to pyproject.toml but not locked would be
missing there, and a range moved past its pin would be silently ignored. ``make lock``
refreshes both.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text(encoding="utf-8")
    assert "--hash=sha256:" in text, f"{name} has no hashes"
    found = {canonicalize_name(m.group(1)): m.group(2)
             for m in map(PIN.match, text.splitlines()) if m}
    unhashed = [line for line in text.split("\n") if PIN.match(line) and "\\" not in line]
    assert not unhashed, f"{name}: pins without hashes: {unhashed}"
    return found


def test_every_dependency_is_locked_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    run, test = pins("requirements.txt"), pins("requirements-test.txt")
    wanted = [("requirements.txt", run, project["dependencies"]),
              ("requirements-test.txt", test,
               project["dependencies"] + project["optional-dependencies"]["test"])]
    problems = []
    for lock, pinned, requirements in wanted:
        for requirement in map(Requirement, requirements):
            for name in [requirement.name] + (["psycopg-binary"] if "binary" in
                                              requirement.extras else []):
                version = pinned.get(canonicalize_name(name))
                if version is None:
                    problems.append(f"{name} is not in {lock}")
                elif name == requirement.name and not requirement.specifier.contains(
                        version, prereleases=True):
                    problems.append(f"{lock} pins {name}=={version}, outside {requirement}")
    # Both locks agree on every distribution they share (one tested set of versions).
    problems += [f"{n}: {run[n]} vs {test[n]}" for n in run if test.get(n) != run[n]]
    for build in ("setuptools", "wheel"):  # the project installs without build isolation
        problems += [f"{build} is not in {lock}" for lock, p, _ in wanted if build not in p]
    assert not problems, "run `make lock`: " + "; ".join(problems)
