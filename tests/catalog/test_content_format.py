"""The content validator: every kind of malformed content is reported with its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lms_plugin.catalog.content_format import load_content
from tests.catalog.helpers import VALID

SYSTEM = "slug: ehr\nname: Electronic health record\n"

# Line numbers matter: the tests below point at them.
BASE = """\
slug: demo
title: Demo module
system: ehr
status: published
estimated_minutes: 10
quiz:
  pass_mark: 80
  draw: 1
questions:
  - id: q1
    type: single_choice
    prompt: Pick a
    options:
      - {id: a, text: A}
      - {id: b, text: B}
    answer: a
  - id: q2
    type: numeric
    prompt: How many?
    answer: 10
    tolerance: 0.5
"""
SOURCES = ("\n## Sources\n\n- National Patient Safety Goals. The Joint Commission, 2025. "
           "<https://www.jointcommission.org/standards/national-patient-safety-goals/>\n")
LESSON = "# Introduction\n\nSome words.\n" + SOURCES


def build(tmp_path: Path, module_yaml: str = BASE, *, folder: str = "demo",
          lessons: dict[str, str] | None = None, images: dict[str, bytes] | None = None,
          systems: dict[str, str] | None = None) -> Path:
    root = tmp_path / "content"
    (root / "systems").mkdir(parents=True, exist_ok=True)
    for name, text in (systems if systems is not None else {"ehr.yaml": SYSTEM}).items():
        (root / "systems" / name).write_text(text)
    module = root / "modules" / folder
    module.mkdir(parents=True)
    (module / "module.yaml").write_text(module_yaml)
    lessons = {"01-introduction.md": LESSON} if lessons is None else lessons
    if lessons:
        (module / "lessons").mkdir()
        for name, text in lessons.items():
            (module / "lessons" / name).write_text(text)
    if images:
        (module / "images").mkdir()
        for name, data in images.items():
            (module / "images" / name).write_bytes(data)
    return root


def problems(root: Path) -> list[str]:
    return [str(p) for p in load_content(root).problems]


def assert_problem(root: Path, expected: str) -> None:
    found = problems(root)
    assert any(p.startswith(expected) for p in found), f"{expected!r} not in {found}"


def test_the_valid_fixture_and_base_have_no_problems(tmp_path):
    bundle = load_content(VALID)
    assert bundle.problems == []
    assert {m.slug for m in bundle.modules} == {"safe-ordering", "bcma-scanning"}
    ordering = next(m for m in bundle.modules if m.slug == "safe-ordering")
    assert [q.type for q in ordering.questions] == [
        "single_choice", "multiple_response", "true_false", "ordering", "matching", "numeric",
        "short_text"]
    assert [lesson.title for lesson in ordering.lessons] == [
        "The right patient, every time", "Dose, route and frequency"]
    assert [a.path for a in ordering.assets] == ["images/banner.svg"]
    assert ordering.questions[0].data == {
        "options": [{"id": "a", "text": "The patient's identity with two identifiers",
                     "feedback": "Correct."},
                    {"id": "b", "text": "The bed number", "feedback": "Bed numbers change."}],
        "answer": "a", "points": 1}
    assert problems(build(tmp_path)) == []


M = "modules/demo/module.yaml"


@pytest.mark.parametrize(("old", "new", "expected"), [
    # 1. YAML syntax error, at the mark's line
    ("title: Demo module", "title: Demo: module", f"{M}:2: YAML syntax error:"),
    # 2. unknown item type
    ("type: single_choice", "type: essay", f"{M}:11: unknown question type 'essay'"),
    # 3. answer key pointing to no option
    ("    answer: a\n", "    answer: c\n", f"{M}:16: answer 'c' points to no option (ids: a, b)"),
    # 4. duplicate question id
    ("- id: q2", "- id: q1", f"{M}:17: duplicate question id 'q1' (first on line 10)"),
    # 5. folder name differs from the slug
    ("slug: demo", "slug: other", f"{M}:1: slug 'other' must equal the folder name 'demo'"),
    # 6. unknown system
    ("system: ehr", "system: pacs", f"{M}:3: unknown system 'pacs': no systems/pacs.yaml"),
    # 7. pass mark out of range
    ("pass_mark: 80", "pass_mark: 120", f"{M}:7: 'pass_mark' is 120; it must be between 0 "
                                        "and 100"),
    # 8. draw larger than the pool
    ("draw: 1", "draw: 5", f"{M}:8: 'draw' is 5 but the pool has only 2 questions"),
    # 9. zero estimated minutes
    ("estimated_minutes: 10", "estimated_minutes: 0",
     f"{M}:5: 'estimated_minutes' is 0; it must be at least 1"),
    # 10. wrong field type
    ("estimated_minutes: 10", "estimated_minutes: ten",
     f"{M}:5: 'estimated_minutes' must be a whole number, not 'ten'"),
    # 11. unknown key (a typo), with a suggestion
    ("pass_mark: 80", "pass_mak: 80", f"{M}:7: unknown key 'pass_mak' in 'quiz' (did you "
                                      "mean 'pass_mark'?)"),
    # 12. numeric answer that is not a number
    ("answer: 10", "answer: ten", f"{M}:20: 'answer' must be a number, not 'ten'"),
    # 13. negative tolerance
    ("tolerance: 0.5", "tolerance: -1", f"{M}:21: 'tolerance' must not be negative"),
    # 14. a yes/no field given text
    ("status: published", "status: live", f"{M}:4: 'status' must be one of draft, published"),
    # 15. duplicate YAML key (PyYAML would silently keep the last one)
    ("title: Demo module\n", "title: Demo module\ntitle: Again\n",
     f"{M}:3: duplicate key 'title' (first on line 2)"),
    # 16. objectives must be a list
    ("status: published\n", "status: published\nobjectives: Do it\n",
     f"{M}:5: 'objectives' must be a list"),
    # 17. a required key missing
    ("    prompt: Pick a\n", "", f"{M}:10: a question is missing required key 'prompt'"),
    # 18. a single_choice with one option
    ("      - {id: b, text: B}\n", "", f"{M}:14: 'options' needs at least 2 entries, found 1"),
    # 19. a key that belongs to another item type
    ("    tolerance: 0.5\n", "    tolerance: 0.5\n    accepted: [x]\n",
     f"{M}:22: unknown key 'accepted' in a numeric question"),
])
def test_each_malformed_module_is_reported_at_its_line(tmp_path, old, new, expected):
    assert old in BASE
    assert_problem(build(tmp_path, BASE.replace(old, new, 1)), expected)


EXTRA = """\
  - id: q3
    type: ordering
    prompt: Order them
    items: [{id: a, text: A}, {id: b, text: B}, {id: c, text: C}]
    answer: [a, b, b]
  - id: q4
    type: matching
    prompt: Match them
    pairs:
      - {id: p1, prompt: One, match: "1"}
  - id: q5
    type: short_text
    prompt: Say it
    accepted: []
  - id: q6
    type: multiple_response
    prompt: Pick
    options: [{id: a, text: A}, {id: b, text: B}]
    answer: [a, z]
    scoring: some
  - id: q7
    type: true_false
    prompt: True?
    answer: "yes"
"""


def test_item_type_rules_are_reported_at_their_lines(tmp_path):
    found = problems(build(tmp_path, BASE + EXTRA))
    expected = [
        f"{M}:26: 'answer' must list every item id exactly once (a permutation of a, b, c)",
        f"{M}:31: 'pairs' needs at least 2 entries, found 1",
        f"{M}:35: a short_text question needs 'accepted' with at least one answer",
        f"{M}:40: answer 'z' points to no option (ids: a, b)",
        f"{M}:41: 'scoring' must be one of partial, all_or_nothing, not 'some'",
        f"{M}:45: 'answer' must be true or false, not 'yes'",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), f"{line!r} not in {found}"
    assert len(found) == len(expected), found


def test_every_problem_is_collected_not_just_the_first(tmp_path):
    text = BASE.replace("pass_mark: 80", "pass_mark: -5").replace(
        "system: ehr", "system: pacs").replace("answer: 10", "answer: lots")
    found = problems(build(tmp_path, text))
    assert [p.split(": ")[0] for p in found] == [f"{M}:3", f"{M}:7", f"{M}:20"]


def test_lesson_problems(tmp_path):
    L = "modules/demo/lessons"
    root = build(tmp_path, lessons={
        "01-introduction.md": "No title here\n\nJust text.\n" + SOURCES,
        "02-empty.md": "",
        "03-pictures.md": "# Pictures\n\n![ok](images/ok.png)\n![gone](images/missing.png)\n"
                          "![web](https://cdn.example.com/x.png)\n" + SOURCES,
        "notes.txt": "stray",
    }, images={"ok.png": b"\x89PNG\r\n\x1a\n fake"})
    found = problems(root)
    assert f"{L}/01-introduction.md:1: lesson has no '# Title' line (a line starting with " \
           "'# ')" in found
    assert f"{L}/02-empty.md:1: lesson file is empty" in found
    assert f"{L}/03-pictures.md:4: image 'images/missing.png' not found: expected " \
           "modules/demo/images/missing.png" in found
    assert any(p.startswith(f"{L}/03-pictures.md:5: image 'https://cdn.example.com/x.png' is "
                            "not shipped") for p in found)
    assert any(p.startswith(f"{L}/notes.txt: lesson files must be named NN-title.md")
               for p in found)
    assert len(found) == 5, found


def test_missing_lessons(tmp_path):
    assert_problem(build(tmp_path, lessons={}),
                   f"{M}:1: module has no lessons: add lessons/01-<title>.md")


def test_duplicate_module_slug(tmp_path):
    root = build(tmp_path)
    copy = root / "modules" / "demo-copy"
    (copy / "lessons").mkdir(parents=True)
    (copy / "module.yaml").write_text(BASE)
    (copy / "lessons" / "01-introduction.md").write_text(LESSON)
    found = problems(root)
    assert "modules/demo-copy/module.yaml:1: duplicate module slug 'demo' (also in " \
           "modules/demo/module.yaml)" in found
    assert "modules/demo-copy/module.yaml:1: slug 'demo' must equal the folder name " \
           "'demo-copy'" in found


def test_system_file_problems(tmp_path):
    root = build(tmp_path, systems={
        "ehr.yaml": SYSTEM,
        "bcma.yaml": "slug: barcode\nname: BCMA\ncolour: blue\n",
        "pacs.yaml": "slug: pacs\nname: [not, text]\n",
        "lab.yaml": "slug: lab\n  name: broken indent\n",
    })
    found = problems(root)
    assert "systems/bcma.yaml:1: slug 'barcode' must equal the file name 'bcma'" in found
    assert any(p.startswith("systems/bcma.yaml:3: unknown key 'colour' in a system file")
               for p in found)
    assert "systems/pacs.yaml:2: 'name' must be text, not a list" in found
    assert any(p.startswith("systems/lab.yaml:2: YAML syntax error:") for p in found)


def test_missing_folders_and_module_yaml(tmp_path):
    root = tmp_path / "empty"
    (root / "modules" / "orphan").mkdir(parents=True)
    found = problems(root)
    assert "systems: folder is missing (one <slug>.yaml per clinical system)" in found
    assert "modules/orphan: module folder has no module.yaml" in found
    assert problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a directory"]


def test_content_hash_ignores_formatting_but_not_content(tmp_path):
    first = load_content(build(tmp_path / "a")).modules[0]
    reformatted = BASE.replace("  - id: q1", "  # a comment\n  - id: q1").replace(
        "title: Demo module", 'title: "Demo module"')
    second = load_content(build(tmp_path / "b", reformatted)).modules[0]
    changed = load_content(build(tmp_path / "c", BASE.replace("Pick a", "Pick b"))).modules[0]
    republished = load_content(build(tmp_path / "d", BASE.replace("published", "draft")))
    assert first.content_hash() == second.content_hash()
    assert first.content_hash() != changed.content_hash()
    assert first.content_hash() == republished.modules[0].content_hash()  # status apart
