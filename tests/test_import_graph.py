"""The import graph of ``lms_plugin/`` points one way (issue 11 item 1; DESIGN "Domain events").

Every module is parsed with ``ast`` and every import counted, including those inside
functions (a deferred import is still a dependency at run time). The rules:

* **Base modules** (top-level ``config``, ``db``, ``errors``, ``extensions``, ``events``…)
  are below every package: they import no package and no shell module.
* **Shell modules** (``__init__`` with ``create_app``, ``cli``, ``models``, ``headers``…)
  compose the application: they may import anything; no package imports them.
* **Packages** are layered; a package imports only packages of a *lower* layer (and base
  modules). The table, lowest first::

      accounts  <-  jobs  <-  catalog  <-  quizzes  <-  learning  <-  lti

  ``jobs`` (the outbox) sits right above ``accounts`` (it audits admin actions on users);
  ``lti`` is the top: it subscribes to ``learning``'s domain events and reads the grade
  policy. New domains slot in by adding a line: ``credits`` and ``reports`` subscribe to
  the same events, so they go above ``learning`` (layer 6, beside ``lti``; ``reports``
  may read ``credits`` at 7). Packages of one layer do not import each other.
* A package's ``tasks`` module is the job runner's plug-in point (``@job_handler``,
  ``schedule.every``): it may import ``jobs`` whatever its package's layer.
* Nothing imports another package's views (``views`` or ``*_views`` modules); only the
  shell registers blueprints.
* In particular (the issue's words): domain packages never import ``lti``, and ``quizzes``
  never imports ``learning``.

``EXCEPTIONS`` lists the few imports that break a rule on purpose, each with its reason; an
entry that no longer occurs fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import lms_plugin

ROOT = Path(lms_plugin.__file__).parent

LAYERS: dict[str, int] = {
    "accounts": 1,
    "jobs": 2,
    "catalog": 3,
    "quizzes": 4,
    "learning": 5,
    "lti": 6,
    "demo": 7,  # the built-in demo LMS: plays the platform against lti (issue 12.3)
    # Administration pages that gather platforms, jobs, people and training history.
    "admin": 7,
    "credits": 6,
    "reports": 6,
}
DOMAIN_PACKAGES = ("accounts", "catalog", "quizzes", "learning", "jobs", "credits", "reports")
BASE_MODULES = {"authz", "clitypes", "config", "db", "errors", "events", "extensions",
                "mail", "markdown", "outbound", "routing"}
SHELL_MODULES = {"__init__", "__main__", "cli", "core", "headers", "health", "layout",
                 "models", "serve"}

# (importing module, imported module) -> why the rule is broken on purpose.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("lms_plugin.jobs.worker", "lms_plugin"):
        "a bare `rq worker` process has no application: the RQ entry point creates one",
}


@dataclass(frozen=True)
class Edge:
    source: str  # dotted module name, e.g. lms_plugin.quizzes.services
    target: str  # dotted module name it imports (lms_plugin.* only)
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts)


def import_edges(root: Path = ROOT) -> list[Edge]:
    """Every ``lms_plugin.*`` import of every module under ``root``, at any depth in the
    module (function bodies included), relative imports resolved."""
    edges = []
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                # A bare ``import lms_plugin`` (for ``__path__``) is no dependency: every
                # import of a submodule loads the root package anyway.
                targets = [alias.name for alias in node.names if alias.name != "lms_plugin"]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from lms_plugin.x import y``: y may be a module; count the deepest module.
                targets = []
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    is_module = (root.parent / Path(*candidate.split("."))).with_suffix(".py")
                    is_package = root.parent / Path(*candidate.split(".")) / "__init__.py"
                    targets.append(candidate if is_module.exists() or is_package.exists()
                                   else base)
            else:
                continue
            edges += [Edge(source, target, node.lineno) for target in targets
                      if target == "lms_plugin" or target.startswith("lms_plugin.")]
    return edges


def top(name: str) -> str:
    """The first part below ``lms_plugin``: a package name, a top-level module's name, or
    ``__init__`` for the package itself."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_package(name: str, root: Path = ROOT) -> bool:
    return (root / top(name)).is_dir()


def is_views(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last == "views" or last.endswith("_views")


def layering_violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks the rules of the module docstring (exceptions excluded)."""
    found = []
    for edge in import_edges(root):
        if (edge.source, edge.target) in EXCEPTIONS:
            continue
        src, dst = top(edge.source), top(edge.target)
        if src == dst and is_package(edge.source, root):
            continue
        if not is_package(edge.source, root):
            if src in BASE_MODULES and (is_package(edge.target, root)
                                        or dst in SHELL_MODULES):
                found.append(f"{edge}: a base module imports upward")
            continue
        if is_views(edge.target):
            found.append(f"{edge}: another package's views")
        elif not is_package(edge.target, root):
            if dst not in BASE_MODULES:
                found.append(f"{edge}: a package imports the application shell")
        elif edge.source.endswith(".tasks") and dst == "jobs":
            continue
        elif src not in LAYERS or dst not in LAYERS:
            found.append(f"{edge}: {src if src not in LAYERS else dst} is not in LAYERS")
        elif LAYERS[dst] >= LAYERS[src]:
            found.append(f"{edge}: {src} (layer {LAYERS[src]}) may not import {dst} "
                         f"(layer {LAYERS[dst]})")
    return found


def test_the_graph_is_read_including_imports_inside_functions():
    edges = {(e.source, e.target) for e in import_edges()}
    assert ("lms_plugin.jobs.worker", "lms_plugin") in edges  # `from lms_plugin import
    # create_app` inside rq_run_job
    assert ("lms_plugin.lti.ags_jobs", "lms_plugin.catalog.models") in edges  # in a function
    assert ("lms_plugin.learning.services", "lms_plugin.events") in edges  # module via from-import


def test_domain_packages_never_import_lti():
    offenders = [str(e) for e in import_edges()
                 if top(e.source) in DOMAIN_PACKAGES and top(e.target) == "lti"]
    assert offenders == []


def test_quizzes_never_imports_learning():
    offenders = [str(e) for e in import_edges()
                 if top(e.source) == "quizzes" and top(e.target) == "learning"]
    assert offenders == []


def test_nothing_imports_another_packages_views():
    offenders = [str(e) for e in import_edges()
                 if is_views(e.target) and is_package(e.source)
                 and top(e.source) != top(e.target)]
    assert offenders == []


def test_every_package_is_in_the_layering_table():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert modules == BASE_MODULES | SHELL_MODULES


def test_imports_follow_the_layers():
    assert layering_violations() == []


def test_every_exception_still_occurs():
    edges = {(e.source, e.target) for e in import_edges()}
    assert [pair for pair in EXCEPTIONS if pair not in edges] == []


def test_the_rules_catch_upward_imports_deferred_relative_and_views(tmp_path):
    """The checker itself, on a small tree with one offence of each kind."""
    root = tmp_path / "lms_plugin"
    files = {
        "__init__.py": "",
        "errors.py": "from lms_plugin.quizzes import models\n",  # base imports a package
        "quizzes/__init__.py": "",
        "quizzes/models.py": "",
        "quizzes/services.py": "def grade():\n    from ..learning import services\n",
        "learning/__init__.py": "",
        "learning/services.py": "from lms_plugin.quizzes import services\n",
        "learning/views.py": "",
        "catalog/__init__.py": "",
        "catalog/services.py": "from lms_plugin.learning.views import bp\n",
        "accounts/__init__.py": "",
        "accounts/tasks.py": "from lms_plugin.jobs import schedule\n",  # allowed
        "jobs/__init__.py": "",
        "jobs/schedule.py": "import lms_plugin\n",  # allowed: the root package only
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    found = layering_violations(root)
    assert [line.split(":")[0] for line in found] == [
        "lms_plugin.catalog.services", "lms_plugin.errors", "lms_plugin.quizzes.services"]
    assert "another package's views" in found[0]
    assert "base module imports upward" in found[1]
    assert "quizzes (layer 4) may not import learning (layer 5)" in found[2]
