"""The content-as-files format: load a ``content/`` directory into plain dataclasses.

Trainers edit YAML and Markdown by hand and review it like code, so the loader never stops at
the first mistake: it collects every problem as ``file:line: message`` (lines come from the
YAML node marks) and returns them with whatever it could read. Nothing here touches the
database; ``catalog.services.import_content`` stores a problem-free ``ContentBundle``.
The format is documented in ``lms_plugin/content/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lms_plugin.catalog.models import ITEM_TYPES
from lms_plugin.db import DB_INT_MAX

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
LESSON_FILE_RE = re.compile(r"^(\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)\.md$")
LESSON_SLUG_MAX = 100  # Lesson.slug
IMAGE_REF_RE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
TITLE_RE = re.compile(r"^#\s+(\S.*?)\s*#*\s*$")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".svg": "image/svg+xml", ".gif": "image/gif", ".webp": "image/webp"}
STATUSES = ("draft", "published")

# Localisation markers (issue 17): ``[[local: suggested wording]]`` in a lesson, a question or
# a module.yaml text marks a passage that is local policy (units, escalation times, who
# double-checks, pump workflow…). Authors see it highlighted in previews; learners never see
# the brackets (the wording is shown); a module holding one cannot be published until the
# hospital replaces it with its own policy (``publish_problems``). Drafts may hold them.
LOCAL_MARKER_RE = re.compile(r"\[\[local:\s*(.*?)\s*\]\]", re.S)
# Sources (issue 17): every lesson ends with a "## Sources" heading followed by a list whose
# entries give title, publisher, year and a link: ``- Title. Publisher, 2024. <https://…>``.
SOURCES_HEADING_RE = re.compile(r"^##\s+Sources\s*$")
SOURCE_ENTRY_RE = re.compile(
    r"^[-*]\s+(?P<title>.+?)\.\s+(?P<publisher>[^.<>]+?),\s+(?P<year>(?:19|20)\d\d)"
    r"(?:[^<]*?)\.?\s+<(?P<link>https://[^\s>]+)>\s*$")
# A scenario item puts the learner in a situation: a prompt of at least this many words, or
# one that starts with a situation cue. A module whose pool has none is warned (issue 17).
SCENARIO_MIN_WORDS = 25
SCENARIO_CUE_RE = re.compile(r"\b(you are|your patient|a patient|a nurse|during|while|"
                             r"at \d|the scanner|the ehr shows|an order)\b", re.I)

# Resource limits for untrusted files (issue 10 item 9: a YAML alias bomb used ~1 GB).
# A shipped module.yaml is ~10 KB; a 1,000-question pool ~1 MB.
MAX_YAML_BYTES = 5 * 1024 * 1024  # per YAML document (module.yaml, systems/*.yaml)
MAX_YAML_ALIASES = 100  # ``*alias`` uses per document (anchors are rare in hand-written YAML)
MAX_YAML_VALUES = 500_000  # values built per document, aliases expanded (a bomb hits this)
MAX_TEXT_BYTES = 1024 * 1024  # per lesson Markdown file
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # per image (lesson/question images, bank <file>s)


# ---------------------------------------------------------------------------- dataclasses

@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the content, located in a file (relative to the content root)."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else \
            f"{self.path}: {self.message}"


@dataclass
class SystemSpec:
    slug: str
    name: str
    vendor: str | None = None
    description: str = ""


@dataclass
class LessonSpec:
    position: int  # 1-based order of the file among the module's lessons
    slug: str
    title: str
    body_markdown: str  # the whole file, title line included (exported back verbatim)
    file: str = ""  # path relative to the content root, for messages (not hashed)


@dataclass
class AssetSpec:
    path: str  # e.g. images/scanner.png
    content_type: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class QuestionSpec:
    key: str
    type: str
    prompt: str
    explanation: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # type-specific keys + points
    # Answered wrong, it fails the attempt whatever the score (``quizzes.services``).
    critical: bool = False


@dataclass
class ModuleSpec:
    slug: str
    title: str
    system: str
    status: str = "draft"
    retraining_required: bool = False
    change_notes: str = ""
    summary: str = ""
    objectives: list[str] = field(default_factory=list)
    # The subset of ``objectives`` marked ``observed: true``: a quiz cannot show them (issue
    # 17); kept for the skills-checklist feature.
    observed_objectives: list[str] = field(default_factory=list)
    audience: list[str] = field(default_factory=list)
    estimated_minutes: int = 15
    validity_months: int | None = None
    pass_mark: int = 80
    attempt_limit: int | None = None
    time_limit_minutes: int | None = None
    draw_count: int | None = None
    shuffle_questions: bool = True
    shuffle_options: bool = True
    # The validated ``credit:`` block (catalog.credit_block), None when absent. Not module
    # content: it is left out of the content hash, so editing it makes no new version.
    credit: dict[str, Any] | None = None
    questions: list[QuestionSpec] = field(default_factory=list)
    lessons: list[LessonSpec] = field(default_factory=list)
    assets: list[AssetSpec] = field(default_factory=list)
    # (line, marker text) of each [[local: …]] in module.yaml, for publish_problems (not
    # hashed: derived from the text).
    yaml_markers: list[tuple[int, str]] = field(default_factory=list)
    # Advisory findings (a pool with no scenario item): printed, never block (not hashed).
    warnings: list[Problem] = field(default_factory=list)

    def content_hash(self) -> str:
        """sha256 of the normalised module without its status: the same content read from
        a hand-edited file, an export or the editor hashes the same, so an unchanged import
        creates no version (status is compared separately by the importer)."""
        payload = {k: v for k, v in asdict(self).items()
                   if k not in ("status", "assets", "yaml_markers", "warnings",
                                 "credit")}
        for lesson in payload["lessons"]:
            lesson.pop("file", None)
        for question in payload["questions"]:  # an uncritical item hashes as before
            if not question.get("critical"):
                question.pop("critical", None)
        if not payload["observed_objectives"]:
            payload.pop("observed_objectives")
        payload["assets"] = sorted((a.path, a.sha256) for a in self.assets)
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ContentBundle:
    systems: list[SystemSpec] = field(default_factory=list)
    modules: list[ModuleSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------ YAML with line numbers

class YMap(dict):
    """A YAML mapping that remembers the line of itself, of each key and of each value."""

    line: int = 1
    key_lines: dict[Any, int]
    value_lines: dict[Any, int]


class YList(list):
    """A YAML sequence that remembers its own line and each item's line."""

    line: int = 1
    item_lines: list[int]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses more than ``MAX_YAML_ALIASES`` alias uses, at the alias."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_YAML_ALIASES} aliases (*name): refused, "
                    "an alias bomb can exhaust memory; write the values out",
                    self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _oversized(root: yaml.Node, limit: int) -> int | None:
    """The line of the innermost node whose value, aliases expanded, exceeds ``limit``
    values; None when the whole document stays within it. Aliases share nodes, so the
    expansion can be exponential in the text (billion laughs); sizes are memoised per node,
    so this costs time linear in the *text*, and nothing is built."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: deep nesting cannot overflow Python's stack
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if done:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in _children(node)))
            continue
        stack.append((node, True))
        stack += [(c, False) for c in _children(node) if id(c) not in sizes]
    if sizes[id(root)] <= limit:
        return None
    node = root
    while True:  # walk down to the smallest node still over the limit
        bigger = next((c for c in _children(node) if sizes[id(c)] > limit), None)
        if bigger is None:
            return _line(node)
        node = bigger


class _Reader:
    """Builds plain values from a composed YAML node tree, keeping 1-based line numbers."""

    def __init__(self, loader: yaml.SafeLoader, report) -> None:
        self.loader = loader
        self.report = report

    def value(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            result = YMap()
            result.line, result.key_lines, result.value_lines = _line(node), {}, {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.report(_line(key_node), "a key must be a plain word")
                    continue
                key = self.loader.construct_object(key_node)
                if isinstance(key, bool):  # `true:` / `false:` keys (true_false feedback)
                    key = "true" if key else "false"
                if key in result:
                    self.report(_line(key_node), f"duplicate key '{key}' (first on line "
                                                 f"{result.key_lines[key]})")
                    continue
                result[key] = self.value(value_node)
                result.key_lines[key] = _line(key_node)
                result.value_lines[key] = _line(value_node)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = YList()
            items.line, items.item_lines = _line(node), []
            for child in node.value:
                items.append(self.value(child))
                items.item_lines.append(_line(child))
            return items
        return self.loader.construct_object(node)


def parse_yaml(text: str, rel: str, problems: list[Problem]) -> Any:
    """Parse one YAML document into YMap/YList/scalars; a syntax error becomes a Problem at
    the mark's line and the result is None. Limits (a Problem, result None): the text is at
    most ``MAX_YAML_BYTES`` (UTF-8), at most ``MAX_YAML_ALIASES`` aliases, and at most
    ``MAX_YAML_VALUES`` values once aliases are expanded (billion-laughs bombs)."""
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_YAML_BYTES \
        else len(text)
    if size > MAX_YAML_BYTES:
        problems.append(Problem(rel, None, f"YAML file is {size / 1048576:.1f} MB; at most "
                                           f"{MAX_YAML_BYTES // 1048576} MB is read"))
        return None
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        line = _oversized(node, MAX_YAML_VALUES)
        if line is not None:
            problems.append(Problem(rel, line, f"YAML limit: this value expands to more than "
                                               f"{MAX_YAML_VALUES:,} values through aliases "
                                               "(*name): refused"))
            return None
        return _Reader(loader, lambda line, msg: problems.append(Problem(rel, line, msg))
                       ).value(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        kind = "YAML limit" if "aliases (*name)" in (exc.problem or "") else "YAML syntax error"
        problems.append(Problem(rel, mark.line + 1 if mark else 1, f"{kind}: {what}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(rel, 1, f"YAML syntax error: {exc}"))
        return None
    except RecursionError:
        problems.append(Problem(rel, None, "YAML limit: values are nested too deeply"))
        return None
    finally:
        loader.dispose()


# ----------------------------------------------------------------------- field checking

_MISSING = object()


class _Checker:
    """Typed reads from a YMap that report (rather than raise) every mistake with its line."""

    def __init__(self, rel: str, problems: list[Problem]) -> None:
        self.rel = rel
        self.problems = problems

    def add(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.rel, line, message))

    def mapping(self, value: Any, line: int, what: str) -> YMap | None:
        if isinstance(value, YMap):
            return value
        self.add(getattr(value, "line", line), f"{what} must be a mapping of key: value "
                                               f"lines, not {_kind(value)}")
        return None

    def unknown_keys(self, m: YMap, allowed: tuple[str, ...], what: str) -> None:
        for key in m:
            if key not in allowed:
                hint = _closest(str(key), allowed)
                self.add(m.key_lines[key], f"unknown key '{key}' in {what}"
                         + (f" (did you mean '{hint}'?)" if hint else "")
                         + f"; allowed: {', '.join(allowed)}")

    def _where(self, m: YMap, key: str) -> int:
        return m.value_lines.get(key, m.line)

    def get(self, m: YMap, key: str, what: str, required: bool) -> Any:
        if key not in m or m[key] is None:
            if required:
                self.add(m.line, f"{what} is missing required key '{key}'")
            return _MISSING
        return m[key]

    def text(self, m: YMap, key: str, what: str, *, required: bool = False,
             default: str | None = "") -> str | None:
        value = self.get(m, key, what, required)
        if value is _MISSING:
            return None if required else default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.add(self._where(m, key), f"'{key}' must be text, not {_kind(value)}")
            return None if required else default
        value = str(value).strip() if isinstance(value, str) else str(value)
        if required and not value:
            self.add(self._where(m, key), f"'{key}' must not be empty")
            return None
        return value

    def slug(self, m: YMap, key: str, what: str, *, required: bool = True) -> str | None:
        value = self.text(m, key, what, required=required, default=None)
        if value is not None and not SLUG_RE.match(value):
            self.add(self._where(m, key), f"'{key}' '{value}' must use lowercase letters, "
                                          "digits and hyphens only")
            return None
        if value is not None and len(value) > 64:
            self.add(self._where(m, key), f"'{key}' is longer than 64 characters")
            return None
        return value

    def boolean(self, m: YMap, key: str, what: str, default: bool) -> bool:
        value = self.get(m, key, what, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.add(self._where(m, key), f"'{key}' must be true or false, not {value!r}")
            return default
        return value

    def integer(self, m: YMap, key: str, what: str, *, required: bool = False,
                default: int | None = None, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        value = self.get(m, key, what, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(self._where(m, key), f"'{key}' must be a whole number, not {value!r}")
            return default
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            span = f"between {minimum} and {maximum}" if maximum is not None \
                else f"at least {minimum}"
            self.add(self._where(m, key), f"'{key}' is {value}; it must be {span}")
            return default
        if value > DB_INT_MAX:  # every whole number is stored in an INTEGER column (issue 9)
            self.add(self._where(m, key), f"'{key}' is {value}; it must be at most {DB_INT_MAX}")
            return default
        return value

    def number(self, m: YMap, key: str, what: str, *, required: bool = False,
               default: float | None = None) -> float | int | None:
        value = self.get(m, key, what, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            self.add(self._where(m, key), f"'{key}' must be a number, not {value!r}")
            return None
        return value

    def choice(self, m: YMap, key: str, what: str, choices: tuple[str, ...],
               default: str) -> str:
        value = self.get(m, key, what, False)
        if value is _MISSING:
            return default
        if value not in choices:
            self.add(self._where(m, key), f"'{key}' must be one of {', '.join(choices)}, "
                                          f"not {value!r}")
            return default
        return value

    def text_list(self, m: YMap, key: str, what: str, *, required: bool = False) -> list[str]:
        value = self.get(m, key, what, required)
        if value is _MISSING:
            return []
        if not isinstance(value, YList):
            self.add(self._where(m, key), f"'{key}' must be a list, not {_kind(value)}")
            return []
        result = []
        for item, line in zip(value, value.item_lines, strict=True):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.add(line, f"each entry of '{key}' must be text, not {_kind(item)}")
            elif str(item).strip():
                result.append(str(item).strip())
            else:
                self.add(line, f"an entry of '{key}' is empty")
        return result


def _kind(value: Any) -> str:
    if isinstance(value, YMap | dict):
        return "a mapping"
    if isinstance(value, YList | list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    return repr(value)


def _closest(word: str, choices: tuple[str, ...]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


# --------------------------------------------------------------------------- questions

COMMON_QUESTION_KEYS = ("id", "type", "prompt", "explanation", "points", "critical")
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "single_choice": ("options", "answer"),
    "multiple_response": ("options", "answer", "scoring"),
    "true_false": ("answer", "feedback"),
    "ordering": ("items", "answer", "scoring"),
    "matching": ("pairs", "distractors"),
    "numeric": ("answer", "tolerance", "tolerance_type", "units"),
    "short_text": ("accepted",),
}


def _id_list(c: _Checker, m: YMap, key: str, what: str, required: tuple[str, ...],
             optional: tuple[str, ...], min_count: int) -> list[dict[str, Any]] | None:
    """A list of mappings with a unique ``id`` and text fields (options, items, pairs)."""
    raw = c.get(m, key, what, True)
    if raw is _MISSING:
        return None
    if not isinstance(raw, YList):
        c.add(c._where(m, key), f"'{key}' must be a list, not {_kind(raw)}")
        return None
    if len(raw) < min_count:
        c.add(c._where(m, key), f"'{key}' needs at least {min_count} entries, "
                                f"found {len(raw)}")
    result: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for entry, line in zip(raw, raw.item_lines, strict=True):
        entry_map = c.mapping(entry, line, f"each entry of '{key}'")
        if entry_map is None:
            continue
        c.unknown_keys(entry_map, ("id", *required, *optional), f"an entry of '{key}'")
        ident = c.text(entry_map, "id", f"an entry of '{key}'", required=True)
        item: dict[str, Any] = {"id": ident}
        for name in required:
            item[name] = c.text(entry_map, name, f"an entry of '{key}'", required=True)
        for name in optional:
            value = c.text(entry_map, name, f"an entry of '{key}'", default=None)
            if value:
                item[name] = value
        if ident is not None and ident in seen:
            c.add(entry_map.value_lines["id"], f"duplicate id '{ident}' in '{key}' "
                                               f"(first on line {seen[ident]})")
            continue
        if ident is not None:
            seen[ident] = entry_map.value_lines["id"]
        if all(item[name] is not None for name in ("id", *required)):
            result.append(item)
    return result


def _answer_ids(c: _Checker, m: YMap, valid: list[str] | None, what: str) -> list[str] | None:
    raw = c.get(m, "answer", what, True)
    if raw is _MISSING:
        return None
    if not isinstance(raw, YList):
        c.add(c._where(m, "answer"), f"'answer' must be a list of ids, not {_kind(raw)}")
        return None
    answer = []
    for item, line in zip(raw, raw.item_lines, strict=True):
        if isinstance(item, bool) or not isinstance(item, str | int):
            c.add(line, f"'answer' entries must be ids, not {_kind(item)}")
            return None
        answer.append(str(item))
        if valid is not None and str(item) not in valid:
            c.add(line, f"answer '{item}' points to no {what} (ids: {', '.join(valid)})")
    return answer


def _question(c: _Checker, raw: Any, line: int) -> QuestionSpec | None:
    q = c.mapping(raw, line, "each question")
    if q is None:
        return None
    qtype = c.text(q, "type", "a question", required=True)
    if qtype is not None and qtype not in ITEM_TYPES:
        hint = _closest(qtype, ITEM_TYPES)
        c.add(q.value_lines["type"], f"unknown question type '{qtype}'"
              + (f" (did you mean '{hint}'?)" if hint else "")
              + f"; use one of {', '.join(ITEM_TYPES)}")
        qtype = None
    key = c.text(q, "id", "a question", required=True)
    if key is not None and len(key) > 64:
        c.add(q.value_lines["id"], "question id is longer than 64 characters")
    prompt = c.text(q, "prompt", "a question", required=True)
    explanation = c.text(q, "explanation", "a question") or ""
    points = c.number(q, "points", "a question", default=1)
    if points is not None and points <= 0:
        c.add(q.value_lines["points"], f"'points' must be more than 0, not {points}")
    if qtype is None:
        c.unknown_keys(q, COMMON_QUESTION_KEYS + tuple(
            sorted({k for keys in TYPE_KEYS.values() for k in keys})), "a question")
        return None
    c.unknown_keys(q, COMMON_QUESTION_KEYS + TYPE_KEYS[qtype], f"a {qtype} question")
    count = len(c.problems)
    data = _type_data(c, q, qtype)
    if key is None or prompt is None or data is None or len(c.problems) != count:
        return None
    data["points"] = points
    return QuestionSpec(key=key, type=qtype, prompt=prompt, explanation=explanation, data=data,
                        critical=c.boolean(q, "critical", "a question", False))


def _type_data(c: _Checker, q: YMap, qtype: str) -> dict[str, Any] | None:
    what = f"a {qtype} question"
    if qtype in ("single_choice", "multiple_response"):
        options = _id_list(c, q, "options", what, ("text",), ("feedback",), 2)
        ids = [o["id"] for o in options] if options is not None else None
        if qtype == "single_choice":
            answer = c.get(q, "answer", what, True)
            if answer is _MISSING:
                return None
            if isinstance(answer, bool) or not isinstance(answer, str | int):
                c.add(q.value_lines["answer"], f"'answer' must be one option id, "
                                               f"not {_kind(answer)}")
                return None
            if ids is not None and str(answer) not in ids:
                c.add(q.value_lines["answer"], f"answer '{answer}' points to no option "
                                               f"(ids: {', '.join(ids)})")
            return {"options": options, "answer": str(answer)}
        answer = _answer_ids(c, q, ids, "option")
        if answer is not None and not answer:
            c.add(q.value_lines["answer"], "'answer' must name at least one correct option")
        if answer is not None and len(set(answer)) != len(answer):
            c.add(q.value_lines["answer"], "'answer' names an option twice")
        scoring = c.choice(q, "scoring", what, ("partial", "all_or_nothing"), "partial")
        return {"options": options, "answer": answer, "scoring": scoring}
    if qtype == "true_false":
        answer = c.get(q, "answer", what, True)
        if answer is not _MISSING and not isinstance(answer, bool):
            c.add(q.value_lines["answer"], f"'answer' must be true or false, not {answer!r}")
        data: dict[str, Any] = {"answer": answer if isinstance(answer, bool) else None}
        feedback = c.get(q, "feedback", what, False)
        if feedback is not _MISSING:
            fb = c.mapping(feedback, q.value_lines["feedback"], "'feedback'")
            if fb is not None:
                c.unknown_keys(fb, ("true", "false"), "'feedback'")
                data["feedback"] = {k: v for k in ("true", "false")
                                    if (v := c.text(fb, k, "'feedback'", default=None))}
        return data
    if qtype == "ordering":
        items = _id_list(c, q, "items", what, ("text",), (), 2)
        ids = [i["id"] for i in items] if items is not None else None
        answer = _answer_ids(c, q, ids, "item")
        if answer is not None and ids is not None and sorted(answer) != sorted(ids):
            c.add(q.value_lines["answer"], "'answer' must list every item id exactly once "
                                           f"(a permutation of {', '.join(ids)})")
        scoring = c.choice(q, "scoring", what, ("all_or_nothing", "partial"), "all_or_nothing")
        return {"items": items, "answer": answer, "scoring": scoring}
    if qtype == "matching":
        pairs = _id_list(c, q, "pairs", what, ("prompt", "match"), (), 2)
        data = {"pairs": pairs}
        distractors = c.text_list(q, "distractors", what)
        if distractors:
            data["distractors"] = distractors
        return data
    if qtype == "numeric":
        answer = c.number(q, "answer", what, required=True)
        tolerance = c.number(q, "tolerance", what, default=0)
        if tolerance is not None and tolerance < 0:
            c.add(q.value_lines["tolerance"], f"'tolerance' must not be negative, "
                                              f"not {tolerance}")
        data = {"answer": answer, "tolerance": tolerance,
                "tolerance_type": c.choice(q, "tolerance_type", what,
                                           ("absolute", "percent"), "absolute")}
        units = c.text(q, "units", what, default=None)
        if units:
            data["units"] = units
        return data
    # short_text
    accepted = c.text_list(q, "accepted", what)
    if not accepted:
        c.add(q.value_lines.get("accepted", q.line),
              "a short_text question needs 'accepted' with at least one answer")
    return {"accepted": accepted}


# ------------------------------------------------------------------------------ modules

MODULE_KEYS = ("slug", "title", "system", "status", "retraining_required", "change_notes",
               "summary", "objectives", "audience", "estimated_minutes", "validity_months",
               "quiz", "questions", "credit")
QUIZ_KEYS = ("pass_mark", "attempt_limit", "time_limit_minutes", "draw", "shuffle_questions",
             "shuffle_options")
SYSTEM_KEYS = ("slug", "name", "vendor", "description")


def _read_text(path: Path, rel: str, problems: list[Problem],
               limit: int = MAX_TEXT_BYTES) -> str | None:
    """The file's UTF-8 text; a Problem (and None) when unreadable or larger than ``limit``
    bytes (checked before reading, so a huge file costs no memory)."""
    try:
        size = path.stat().st_size
        if size > limit:
            problems.append(Problem(rel, None, f"file is {size / 1048576:.1f} MB; at most "
                                               f"{limit / 1048576:g} MB is read"))
            return None
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(rel, None, f"not UTF-8 text ({exc.reason})"))
    except OSError as exc:
        problems.append(Problem(rel, None, f"cannot read: {exc.strerror}"))
    return None


def load_system(path: Path, rel: str, problems: list[Problem]) -> SystemSpec | None:
    text = _read_text(path, rel, problems, MAX_YAML_BYTES)
    if text is None:
        return None
    c = _Checker(rel, problems)
    m = c.mapping(parse_yaml(text, rel, problems), 1, "a system file") \
        if text.strip() else None
    if m is None:
        if not text.strip():
            c.add(1, "system file is empty")
        return None
    c.unknown_keys(m, SYSTEM_KEYS, "a system file")
    slug = c.slug(m, "slug", "a system file")
    if slug is not None and slug != path.stem:
        c.add(m.value_lines["slug"], f"slug '{slug}' must equal the file name '{path.stem}'")
    name = c.text(m, "name", "a system file", required=True)
    vendor = c.text(m, "vendor", "a system file", default=None)
    description = c.text(m, "description", "a system file") or ""
    if slug is None or name is None:
        return None
    return SystemSpec(slug=slug, name=name, vendor=vendor or None, description=description)


def load_module(folder: Path, rel_folder: str, systems: set[str] | None,
                problems: list[Problem]) -> ModuleSpec | None:
    """One module folder; ``systems`` is the set of known system slugs (None: don't check)."""
    rel = f"{rel_folder}/module.yaml"
    start = len(problems)
    path = folder / "module.yaml"
    if not path.is_file():
        problems.append(Problem(rel_folder, None, "module folder has no module.yaml"))
        return None
    text = _read_text(path, rel, problems, MAX_YAML_BYTES)
    if text is None:
        return None
    c = _Checker(rel, problems)
    parsed = parse_yaml(text, rel, problems)
    if parsed is None:
        if not text.strip():
            c.add(1, "module.yaml is empty")
        return None
    m = c.mapping(parsed, 1, "module.yaml")
    if m is None:
        return None
    c.unknown_keys(m, MODULE_KEYS, "module.yaml")
    spec = ModuleSpec(slug="", title="", system="")
    slug = c.slug(m, "slug", "module.yaml")
    if slug is not None and slug != folder.name:
        c.add(m.value_lines["slug"], f"slug '{slug}' must equal the folder name "
                                     f"'{folder.name}'")
    spec.slug = slug or folder.name
    spec.title = c.text(m, "title", "module.yaml", required=True) or ""
    if len(spec.title) > 300:
        c.add(m.value_lines["title"], "'title' is longer than 300 characters")
    system = c.slug(m, "system", "module.yaml")
    if system is not None and systems is not None and system not in systems:
        c.add(m.value_lines["system"], f"unknown system '{system}': no systems/{system}.yaml"
              + (f" (known: {', '.join(sorted(systems))})" if systems else ""))
    spec.system = system or ""
    spec.status = c.choice(m, "status", "module.yaml", STATUSES, "draft")
    spec.retraining_required = c.boolean(m, "retraining_required", "module.yaml", False)
    spec.change_notes = c.text(m, "change_notes", "module.yaml") or ""
    spec.summary = c.text(m, "summary", "module.yaml") or ""
    spec.objectives, spec.observed_objectives = _objectives(c, m)
    spec.audience = c.text_list(m, "audience", "module.yaml")
    spec.estimated_minutes = c.integer(m, "estimated_minutes", "module.yaml", required=True,
                                       default=15, minimum=1) or 15
    # 100 years: a completion's expiry date must stay a date (datetime ends at year 9999).
    spec.validity_months = c.integer(m, "validity_months", "module.yaml", minimum=1,
                                     maximum=1200)

    quiz = c.get(m, "quiz", "module.yaml", False)
    quiz_map = c.mapping(quiz, m.value_lines.get("quiz", 1), "'quiz'") \
        if quiz is not _MISSING else None
    draw_line = None
    if quiz_map is not None:
        c.unknown_keys(quiz_map, QUIZ_KEYS, "'quiz'")
        spec.pass_mark = c.integer(quiz_map, "pass_mark", "'quiz'", default=80, minimum=0,
                                   maximum=100)
        spec.attempt_limit = c.integer(quiz_map, "attempt_limit", "'quiz'", minimum=1)
        spec.time_limit_minutes = c.integer(quiz_map, "time_limit_minutes", "'quiz'",
                                            minimum=1)
        spec.draw_count = c.integer(quiz_map, "draw", "'quiz'", minimum=1)
        draw_line = quiz_map.value_lines.get("draw")
        spec.shuffle_questions = c.boolean(quiz_map, "shuffle_questions", "'quiz'", True)
        spec.shuffle_options = c.boolean(quiz_map, "shuffle_options", "'quiz'", True)

    if m.get("credit") is not None:
        from lms_plugin.catalog.credit_block import validate_credit  # (imports this module)

        spec.credit, _ = validate_credit(m["credit"], rel, problems,
                                         m.value_lines.get("credit", 1))

    images = _load_images(folder, rel_folder, problems)
    referenced: set[str] = set()
    raw_questions = c.get(m, "questions", "module.yaml", True)
    if raw_questions is not _MISSING:
        if not isinstance(raw_questions, YList):
            c.add(m.value_lines["questions"], f"'questions' must be a list, "
                                              f"not {_kind(raw_questions)}")
        elif not raw_questions:
            c.add(m.value_lines["questions"], "'questions' is empty: add at least one")
        else:
            seen: dict[str, int] = {}
            for raw, line in zip(raw_questions, raw_questions.item_lines, strict=True):
                key_line = raw.value_lines.get("id", line) if isinstance(raw, YMap) else line
                question = _question(c, raw, line)
                key = raw.get("id") if isinstance(raw, YMap) else None
                if key is not None and str(key) in seen:
                    c.add(key_line, f"duplicate question id '{key}' (first on line "
                                    f"{seen[str(key)]})")
                    continue
                if key is not None:
                    seen[str(key)] = key_line
                if question is not None:
                    spec.questions.append(question)
                    _check_image_refs(question.prompt, raw.value_lines.get("prompt", line),
                                      rel, rel_folder, set(images), referenced, problems)
            if spec.draw_count is not None and spec.draw_count > len(raw_questions):
                c.add(draw_line, f"'draw' is {spec.draw_count} but the pool has only "
                                 f"{len(raw_questions)} questions")
            elif spec.draw_count is not None and 2 * spec.draw_count > len(raw_questions):
                # Issue 17: a retake must be able to see different items.
                c.add(draw_line, f"'draw' is {spec.draw_count} but the pool has only "
                                 f"{len(raw_questions)} questions: a pool needs at least twice "
                                 f"the draw ({2 * spec.draw_count}) so a retake sees different "
                                 "items; add questions or lower 'draw'")
            if spec.questions and not any(is_scenario(q) for q in spec.questions):
                spec.warnings.append(Problem(rel, m.value_lines["questions"],
                                             "no scenario items: every question is a short "
                                             "recall item; put the learner in a situation "
                                             "(\"Your patient…\") to test safe practice"))

    spec.lessons = _load_lessons(folder, rel_folder, rel, set(images), referenced, problems)
    spec.yaml_markers = _markers_with_lines(text)
    # Only images a lesson or question shows are stored (and hashed): an unused file changes
    # nothing.
    spec.assets = [images[path] for path in sorted(referenced)]
    return spec if len(problems) == start else None


def _load_images(folder: Path, rel_folder: str, problems: list[Problem]) -> dict[str, AssetSpec]:
    images: dict[str, AssetSpec] = {}
    image_dir = folder / "images"
    if not image_dir.is_dir():
        return images
    for path in sorted(image_dir.iterdir()):
        if path.name.startswith("."):
            continue
        rel = f"{rel_folder}/images/{path.name}"
        content_type = IMAGE_TYPES.get(path.suffix.lower())
        if not path.is_file() or content_type is None:
            problems.append(Problem(rel, None, "images/ may only hold .png, .jpg, .svg, .gif "
                                               "or .webp files"))
            continue
        if path.stat().st_size > MAX_IMAGE_BYTES:  # before reading it into memory
            problems.append(Problem(rel, None, f"image is {path.stat().st_size / 1048576:.1f} "
                                               f"MB; images may be at most "
                                               f"{MAX_IMAGE_BYTES // 1048576} MB"))
            continue
        data = path.read_bytes()
        problem = image_problem(path.name, data, content_type)
        if problem is not None:
            problems.append(Problem(rel, None, problem))
            continue
        images[f"images/{path.name}"] = AssetSpec(path=f"images/{path.name}",
                                                  content_type=content_type, data=data)
    return images


def _check_image_refs(text: str, line: int, rel: str, rel_folder: str, images: set[str],
                      referenced: set[str], problems: list[Problem]) -> None:
    """Markdown images in a lesson line or a question prompt must be files of images/;
    the ones found are added to ``referenced`` (they are stored with the module)."""
    for ref in IMAGE_REF_RE.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.I) or ref.startswith("//"):
            problems.append(Problem(rel, line, f"image '{ref}' is not shipped with the module: "
                                               "put it in images/ (pages cannot load outside "
                                               "images)"))
        elif ref not in images:
            problems.append(Problem(rel, line, f"image '{ref}' not found: expected "
                                               f"{rel_folder}/{ref}"))
        else:
            referenced.add(ref)


def _load_lessons(folder: Path, rel_folder: str, module_rel: str, images: set[str],
                  referenced: set[str], problems: list[Problem]) -> list[LessonSpec]:
    lesson_dir = folder / "lessons"
    files = sorted(p for p in lesson_dir.iterdir() if not p.name.startswith(".")) \
        if lesson_dir.is_dir() else []
    numbered: list[tuple[int, str, Path]] = []
    numbers: dict[int, str] = {}
    for path in files:
        rel = f"{rel_folder}/lessons/{path.name}"
        match = LESSON_FILE_RE.match(path.name)
        if not path.is_file() or not match:
            problems.append(Problem(rel, None, "lesson files must be named NN-title.md "
                                               "(digits, a hyphen, lowercase words)"))
            continue
        if len(match.group(2)) > LESSON_SLUG_MAX:  # the slug is stored whole, never cut
            problems.append(Problem(rel, None, f"the lesson name after the number is "
                                               f"{len(match.group(2))} characters long; at "
                                               f"most {LESSON_SLUG_MAX} are allowed"))
            continue
        number = int(match.group(1))
        if number in numbers:
            problems.append(Problem(rel, None, f"two lessons are numbered {number} "
                                               f"(also {numbers[number]})"))
        numbers[number] = path.name
        numbered.append((number, match.group(2), path))
    if not numbered:
        problems.append(Problem(module_rel, 1, "module has no lessons: add lessons/01-<title>"
                                               ".md beside module.yaml"))
        return []
    lessons = []
    for position, (_, slug, path) in enumerate(sorted(numbered), start=1):
        rel = f"{rel_folder}/lessons/{path.name}"
        body = _read_text(path, rel, problems)
        if body is None:
            continue
        if not body.strip():
            problems.append(Problem(rel, 1, "lesson file is empty"))
            continue
        lines = body.splitlines()
        title = next((m.group(1) for line in lines if (m := TITLE_RE.match(line))), None)
        if title is None:
            problems.append(Problem(rel, 1, "lesson has no '# Title' line (a line starting "
                                            "with '# ')"))
        elif len(title) > 300:
            problems.append(Problem(rel, 1, "lesson title is longer than 300 characters"))
        for number, line in enumerate(lines, start=1):
            _check_image_refs(line, number, rel, rel_folder, images, referenced, problems)
        _check_sources(lines, rel, problems)
        if title is not None:
            lessons.append(LessonSpec(position=position, slug=slug, title=title,
                                      body_markdown=body, file=rel))
    return lessons


def _objectives(c: _Checker, m: YMap) -> tuple[list[str], list[str]]:
    """``objectives``: each entry is text, or ``{text: …, observed: true}`` for an objective
    a quiz cannot show (performing the bedside scan, finding the downtime kit), which needs
    an observed check. Returns (all objective texts, the observed ones)."""
    raw = c.get(m, "objectives", "module.yaml", False)
    if raw is _MISSING:
        return [], []
    if not isinstance(raw, YList):
        c.add(c._where(m, "objectives"), f"'objectives' must be a list, not {_kind(raw)}")
        return [], []
    texts: list[str] = []
    observed: list[str] = []
    for item, line in zip(raw, raw.item_lines, strict=True):
        if isinstance(item, YMap):
            c.unknown_keys(item, ("text", "observed"), "an objective")
            text = c.text(item, "text", "an objective", required=True)
            if text is not None:
                texts.append(text)
                if c.boolean(item, "observed", "an objective", False):
                    observed.append(text)
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            c.add(line, f"each objective must be text or {{text, observed}}, not {_kind(item)}")
        elif str(item).strip():
            texts.append(str(item).strip())
        else:
            c.add(line, "an entry of 'objectives' is empty")
    return texts, observed


def _check_sources(lines: list[str], rel: str, problems: list[Problem]) -> None:
    """A lesson ends with ``## Sources`` and at least one entry ``- Title. Publisher, Year.
    <https://link>`` (issue 17: every clinical claim is traceable); only list entries (and
    blank lines) may follow the heading. Each malformed entry is reported at its line."""
    heading = next((n for n in range(len(lines), 0, -1)
                    if SOURCES_HEADING_RE.match(lines[n - 1])), None)
    if heading is None:
        problems.append(Problem(rel, len(lines) or 1,
                                "lesson has no sources: end it with a '## Sources' heading and "
                                "entries like '- Title. Publisher, 2024. <https://…>'"))
        return
    entries = 0
    for number in range(heading + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if not line:
            continue
        if not line.startswith(("- ", "* ")):
            problems.append(Problem(rel, number, "only source entries may follow '## Sources' "
                                                 "(the sources end the lesson)"))
            continue
        entries += 1
        if not SOURCE_ENTRY_RE.match(line):
            problems.append(Problem(rel, number, "a source needs title, publisher, year and "
                                                 "an https link: '- Title. Publisher, 2024. "
                                                 "<https://…>'"))
    if not entries:
        problems.append(Problem(rel, heading, "'## Sources' lists no source"))


def is_scenario(question: QuestionSpec) -> bool:
    """Whether an item puts the learner in a situation (a long prompt, or a situation cue
    such as "Your patient…"), as opposed to recalling a term. A heuristic: it only warns."""
    prompt = question.prompt
    return len(prompt.split()) >= SCENARIO_MIN_WORDS or bool(SCENARIO_CUE_RE.search(prompt))


def _markers_with_lines(text: str) -> list[tuple[int, str]]:
    """(line where it starts, wording with whitespace collapsed) of each marker in a text;
    a marker may span lines (Markdown paragraphs wrap)."""
    return [(text.count("\n", 0, mk.start()) + 1, " ".join(mk.group(1).split()))
            for mk in LOCAL_MARKER_RE.finditer(text)]


def local_markers(spec: ModuleSpec) -> list[Problem]:
    """Every unresolved ``[[local: …]]`` marker of a module as a Problem at its file and line
    (lesson files and module.yaml when loaded from files; lesson/question names when the
    spec came from the database)."""
    found: list[Problem] = []
    for lesson in spec.lessons:
        where = lesson.file or f"modules/{spec.slug}: lesson {lesson.position} ({lesson.slug})"
        for number, text in _markers_with_lines(lesson.body_markdown):
            found.append(Problem(where, number, f"unresolved localisation marker "
                                                f"'[[local: {text}]]'"))
    if spec.yaml_markers:
        rel = f"modules/{spec.slug}/module.yaml"
        found += [Problem(rel, line, f"unresolved localisation marker '[[local: {text}]]'")
                  for line, text in spec.yaml_markers]
        return found
    texts = [("summary", spec.summary), *(("objective", o) for o in spec.objectives)]
    for q in spec.questions:
        texts += [(f"question {q.key}", q.prompt), (f"question {q.key}", q.explanation),
                  *((f"question {q.key}", json.dumps(q.data, ensure_ascii=False)),)]
    for where, text in texts:
        for mk in LOCAL_MARKER_RE.finditer(text or ""):
            found.append(Problem(f"modules/{spec.slug}: {where}", None,
                                 f"unresolved localisation marker '[[local: {mk.group(1)}]]'"))
    return found


def publish_problems(specs: list[ModuleSpec]) -> list[Problem]:
    """What stops these modules from being published (drafts may hold it): unresolved
    localisation markers. Used by the import's publish path and ``publish_version``."""
    return [p for spec in specs for p in local_markers(spec)]


# ----------------------------------------------------------------------------- directory

def load_content(root: str | Path) -> ContentBundle:
    """Read and validate a whole content directory; every problem is collected."""
    root = Path(root)
    bundle = ContentBundle()
    problems = bundle.problems
    if not root.is_dir():
        problems.append(Problem(str(root), None, "not a directory"))
        return bundle
    systems_dir, modules_dir = root / "systems", root / "modules"
    if not systems_dir.is_dir():
        problems.append(Problem("systems", None, "folder is missing (one <slug>.yaml per "
                                                 "clinical system)"))
    if not modules_dir.is_dir():
        problems.append(Problem("modules", None, "folder is missing (one folder per module)"))

    known: dict[str, str] = {}
    if systems_dir.is_dir():
        for path in sorted(systems_dir.iterdir()):
            if path.name.startswith("."):
                continue
            rel = f"systems/{path.name}"
            if path.suffix not in (".yaml", ".yml") or not path.is_file():
                problems.append(Problem(rel, None, "systems/ may only hold <slug>.yaml files"))
                continue
            system = load_system(path, rel, problems)
            if system is None:
                known.setdefault(path.stem, rel)  # still known: report only its own problem
                continue
            if system.slug in known:
                problems.append(Problem(rel, 1, f"duplicate system slug '{system.slug}' "
                                                f"(also {known[system.slug]})"))
                continue
            known[system.slug] = rel
            bundle.systems.append(system)

    if modules_dir.is_dir():
        slugs: dict[str, str] = {}
        for folder in sorted(modules_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            rel_folder = f"modules/{folder.name}"
            module = load_module(folder, rel_folder, set(known), problems)
            declared = _declared_slug(folder)
            if declared is not None:
                slug, line = declared
                if slug in slugs:
                    problems.append(Problem(f"{rel_folder}/module.yaml", line,
                                            f"duplicate module slug '{slug}' (also in "
                                            f"{slugs[slug]})"))
                    continue
                slugs[slug] = f"{rel_folder}/module.yaml"
            if module is not None:
                bundle.modules.append(module)
    problems.sort(key=lambda p: (p.path, p.line or 0))
    return bundle


def _declared_slug(folder: Path) -> tuple[str, int] | None:
    """The slug a module.yaml declares (for the duplicate check), if it can be read."""
    text = _read_text(folder / "module.yaml", "", [], MAX_YAML_BYTES)
    if text is None:
        return None
    parsed = parse_yaml(text, "", [])
    if isinstance(parsed, YMap) and isinstance(parsed.get("slug"), str):
        return parsed["slug"], parsed.value_lines["slug"]
    return None


IMAGE_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
                    "image/webp": ".webp", "image/svg+xml": ".svg"}


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes are (magic numbers), or None: a file is what its bytes say,
    not what its name says."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) and b"<svg" in head:
        return "image/svg+xml"
    return None


def image_problem(name: str, data: bytes, expected: str | None = None) -> str | None:
    """The one rule for every imported image (lesson ``images/``, question images, files
    embedded in a Moodle XML bank): at most ``MAX_IMAGE_BYTES``, and PNG, JPEG, GIF, WebP
    or SVG by its bytes (matching ``expected``, the type its file name claims, if given).
    Returns a message naming the problem, or None when the image is fine."""
    if len(data) > MAX_IMAGE_BYTES:
        return (f"image '{name}' is {len(data) / 1048576:.1f} MB; images may be at most "
                f"{MAX_IMAGE_BYTES // 1048576} MB")
    found = sniff_image(data)
    if found is None:
        return f"'{name}' is not a PNG, JPEG, GIF, WebP or SVG image (by its content)"
    if expected is not None and found != expected:
        return (f"'{name}' is named as {expected} but its content is {found}: rename it to "
                f"{Path(name).stem}{IMAGE_EXTENSIONS[found]}")
    return None


def guess_content_type(path: str) -> str:
    return IMAGE_TYPES.get(Path(path).suffix.lower()) or \
        mimetypes.guess_type(path)[0] or "application/octet-stream"


# ------------------------------------------------------------------ question bank helpers

def percent_text(value: float) -> str:
    """A bank answer's credit percent as its converters print it: ``50``, ``33.33333``."""
    return f"{value:.5f}".rstrip("0").rstrip(".")


def warn_dropped_credit(warn: Callable[[str], None], options: list[dict],
                        credits: list[float], kept: Callable[[float], bool], why: str) -> None:
    """One warning listing the answers whose partial credit (percent, parallel to
    ``options``) the converted item type cannot carry (``kept`` is False for them): the
    GIFT and Moodle XML converters share it (the quiz engine has no per-option credit)."""
    lost = [f"'{o['text']}' ({percent_text(c)}%)" for o, c in zip(options, credits, strict=True)
            if not kept(c)]
    if lost:
        warn(f"partial credit dropped for {', '.join(lost)}: {why} (the quiz engine has no "
             "per-option credit)")


@dataclass
class BankResult:
    """Questions converted from (or to) a question bank file, and what could not be."""

    questions: list[QuestionSpec] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # "question 3 (line 12, 'x'): …"
    # Converted, but something was left out (partial credit, an image): "question 3 …: …"
    warnings: list[str] = field(default_factory=list)
    text: str = ""  # the exported file, for exports
    streamed: int = 0  # questions handed to an ``emit`` callback instead of kept

    @property
    def count(self) -> int:
        """Questions converted (kept or streamed)."""
        return len(self.questions) + self.streamed

    def add(self, question: QuestionSpec, where: str, warnings: list[str], emit=None) -> bool:
        """Validate a converted question (``question_problems``): keep it (or hand it to
        ``emit``) with its warnings, or report it as not converted. True when kept."""
        problems = question_problems(question)
        if problems:
            self.unsupported += [f"{where}: {message}" for message in problems]
            return False
        self.warnings += [f"{where}: {text}" for text in warnings]
        if emit is None:
            self.questions.append(question)
        else:
            emit(question)
            self.streamed += 1
        return True


class UniqueKeys:
    """Question ids from a bank's names: slug-like, at most 64 characters, unique.

    Banks repeat names ("Question 1" thousands of times); the next free suffix is remembered
    per slug, so making n ids costs O(n), not O(n²)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self._next: dict[str, int] = {}

    def make(self, base: str, fallback: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:56] or fallback
        key = slug
        if key in self.taken:
            n = self._next.get(slug, 2)
            while f"{slug}-{n}" in self.taken:
                n += 1
            key, self._next[slug] = f"{slug}-{n}", n + 1
        self.taken.add(key)
        return key

    def release(self, key: str) -> None:
        """Give back the id of a question that was not converted."""
        self.taken.discard(key)


def _as_node(value: Any) -> Any:
    """Plain dicts/lists as the YMap/YList shapes ``_question`` reads (every line 1)."""
    if isinstance(value, dict):
        result = YMap()
        result.line, result.key_lines, result.value_lines = 1, {}, {}
        for key, item in value.items():
            result[key] = _as_node(item)
            result.key_lines[key] = result.value_lines[key] = 1
        return result
    if isinstance(value, list):
        items = YList(_as_node(item) for item in value)
        items.line, items.item_lines = 1, [1] * len(items)
        return items
    return value


def question_problems(question: QuestionSpec) -> list[str]:
    """What the module.yaml rules find wrong with a converted bank question (no correct
    option, one matching pair…), so such an item is reported, not kept. Checked in memory
    (no YAML round trip), one question at a time: linear in the bank's size."""
    from lms_plugin.catalog.exporter import question_to_dict

    problems: list[Problem] = []
    _question(_Checker("bank", problems), _as_node(question_to_dict(question)), 1)
    return [p.message for p in problems]
