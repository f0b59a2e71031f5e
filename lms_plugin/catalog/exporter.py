"""Write modules back to the content-as-files format (``lms-plugin content export``).

The output reads back to the same normalised content (same content hash), so exporting and
importing again makes no new versions; it is also what a trainer edits by hand, so keys come
in the documented order and long text is written as readable block scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lms_plugin.catalog.content_format import (
    IMAGE_REF_RE,
    BankResult,
    ModuleSpec,
    QuestionSpec,
    SystemSpec,
)

QUESTION_KEY_ORDER = ("options", "items", "pairs", "distractors", "answer", "tolerance",
                      "tolerance_type", "units", "accepted", "scoring", "feedback")


class _Dumper(yaml.SafeDumper):
    """Block style, no key sorting, multi-line strings as ``|`` blocks, indented lists."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if len(value) > 80 and value == value.strip():
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=">")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


# libyaml's emitter, ~10x faster than PyYAML's: a converted 50 MB question bank is tens of
# thousands of questions. It writes lists unindented under their key (still the same YAML).
_FastDumper = type("_FastDumper", (getattr(yaml, "CSafeDumper", _Dumper),), {})
_FastDumper.add_representer(str, _str)


def dump_yaml(data: Any, *, fast: bool = False) -> str:
    """Block-style YAML; ``fast`` uses libyaml's emitter (for big question banks)."""
    return yaml.dump(data, Dumper=_FastDumper if fast else _Dumper, sort_keys=False,
                     allow_unicode=True, width=92, default_flow_style=False)


def system_to_dict(system: SystemSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"slug": system.slug, "name": system.name}
    if system.vendor:
        data["vendor"] = system.vendor
    if system.description:
        data["description"] = system.description
    return data


def question_to_dict(question: QuestionSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"id": question.key, "type": question.type}
    points = question.data.get("points", 1)
    if points != 1:
        data["points"] = points
    if question.critical:
        data["critical"] = True
    data["prompt"] = question.prompt
    extra = {k: v for k, v in question.data.items() if k != "points"}
    for key in QUESTION_KEY_ORDER:
        if key in extra:
            data[key] = extra.pop(key)
    data.update(extra)
    if question.explanation:
        data["explanation"] = question.explanation
    return data


def module_to_dict(spec: ModuleSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": spec.slug, "title": spec.title, "system": spec.system, "status": spec.status,
        "retraining_required": spec.retraining_required,
    }
    if spec.change_notes:
        data["change_notes"] = spec.change_notes
    if spec.summary:
        data["summary"] = spec.summary
    if spec.objectives:
        observed = set(spec.observed_objectives)
        data["objectives"] = [{"text": o, "observed": True} if o in observed else o
                              for o in spec.objectives]
    if spec.audience:
        data["audience"] = list(spec.audience)
    data["estimated_minutes"] = spec.estimated_minutes
    if spec.validity_months is not None:
        data["validity_months"] = spec.validity_months
    quiz: dict[str, Any] = {"pass_mark": spec.pass_mark}
    for key, value in (("attempt_limit", spec.attempt_limit),
                       ("time_limit_minutes", spec.time_limit_minutes),
                       ("draw", spec.draw_count)):
        if value is not None:
            quiz[key] = value
    quiz["shuffle_questions"] = spec.shuffle_questions
    quiz["shuffle_options"] = spec.shuffle_options
    data["quiz"] = quiz
    data["questions"] = [question_to_dict(q) for q in spec.questions]
    return data


def referenced_images(spec: ModuleSpec) -> list[str]:
    """Every ``images/…`` file a lesson or a question prompt shows (what export writes)."""
    texts = [lesson.body_markdown for lesson in spec.lessons] + \
        [question.prompt for question in spec.questions]
    return sorted({ref for text in texts for ref in IMAGE_REF_RE.findall(text)
                   if ref.startswith("images/")})


def write_system(root: Path, system: SystemSpec) -> None:
    folder = root / "systems"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{system.slug}.yaml").write_text(dump_yaml(system_to_dict(system)),
                                                encoding="utf-8")


def write_module(root: Path, spec: ModuleSpec) -> Path:
    """Write one module folder (its lessons/ and images/ are rewritten from scratch)."""
    folder = root / "modules" / spec.slug
    for sub in ("lessons", "images"):
        if (folder / sub).is_dir():
            for old in (folder / sub).iterdir():
                if old.is_file():
                    old.unlink()
    (folder / "lessons").mkdir(parents=True, exist_ok=True)
    header = f"# {spec.title}: exported by lms-plugin content export; format: content/README.md\n"
    (folder / "module.yaml").write_text(header + dump_yaml(module_to_dict(spec)),
                                        encoding="utf-8")
    for lesson in spec.lessons:
        (folder / "lessons" / f"{lesson.position:02d}-{lesson.slug}.md").write_text(
            lesson.body_markdown, encoding="utf-8")
    if spec.assets:
        (folder / "images").mkdir(exist_ok=True)
        for asset in spec.assets:
            (folder / asset.path).write_bytes(asset.data)
    return folder


def bank_yaml(result: BankResult) -> str:
    """The ``questions:`` YAML of a converted bank (empty when nothing converted)."""
    chunks: list[str] = []
    with BankYamlWriter(chunks.append) as writer:
        for question in result.questions:
            writer.question(question)
    return "".join(chunks)


class BankYamlWriter:
    """Writes ``questions:`` YAML a batch of questions at a time, so a big bank is never
    held whole: the key line before the first question, then the questions as list items
    (batches of ``batch``: one emitter call per question costs ~0.1 ms of setup)."""

    def __init__(self, write: Callable[[str], Any], batch: int = 200) -> None:
        self.write = write
        self.batch = batch
        self.pending: list[dict[str, Any]] = []
        self.started = False

    def question(self, question: QuestionSpec) -> None:
        self.pending.append(question_to_dict(question))
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if not self.started:
            self.write("questions:\n")
            self.started = True
        self.write(dump_yaml(self.pending, fast=True))
        self.pending = []

    def __enter__(self) -> BankYamlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
