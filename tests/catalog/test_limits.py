"""Resource limits on content and bank input (issue 10 item 9): YAML alias bombs, oversize
documents and files, deep nesting, and large question banks that must convert in linear time
with bounded memory."""

from __future__ import annotations

import time
import tracemalloc

from sqlalchemy import func, select

from lms_plugin.catalog import gift, moodle_xml
from lms_plugin.catalog.content_format import (
    MAX_TEXT_BYTES,
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
)
from lms_plugin.catalog.models import Module
from lms_plugin.extensions import db
from tests.catalog.test_bank_images import PNG, bank, file, question
from tests.catalog.test_content_format import BASE, build, problems

# Nine levels of nine aliases each: 9**9 (387 million) strings once expanded, 81 aliases.
BOMB = "\n".join(['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
                 + [f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]"
                    for i in range(1, 10)]) + "\n"


def test_alias_bomb_is_refused_quickly_with_file_and_line(app, tmp_path):
    root = build(tmp_path, BASE + BOMB)
    started = time.perf_counter()
    result = app.test_cli_runner().invoke(args=["content", "import", str(root)])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 1
    # line 27 is lol5: 9**6 values, the first level over the limit
    assert f"{root}/modules/demo/module.yaml:27: YAML limit: this value expands to more than " \
           "500,000 values through aliases (*name): refused" in result.output
    assert "nothing was imported" in result.output
    assert elapsed < 10  # it ran past a minute (and used ~1 GB) before the limit
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Module)) == 0


def test_too_many_aliases_are_refused_at_the_alias(tmp_path):
    aliases = "\n".join(f"a{i}: *x" for i in range(MAX_YAML_ALIASES + 1))
    root = build(tmp_path, BASE + "x: &x 1\n" + aliases + "\n")
    line = BASE.count("\n") + 2 + MAX_YAML_ALIASES
    assert f"modules/demo/module.yaml:{line}: YAML limit: more than {MAX_YAML_ALIASES} aliases " \
           "(*name): refused, an alias bomb can exhaust memory; write the values out" \
        in problems(root)


def test_a_few_aliases_still_work(tmp_path):
    text = BASE.replace("    prompt: Pick a\n", "    prompt: &p Pick a\n").replace(
        "    prompt: How many?\n", "    prompt: *p\n")
    assert problems(build(tmp_path, text)) == []


def test_oversize_yaml_and_lesson_files_are_refused_before_reading(tmp_path):
    root = build(tmp_path / "a", BASE + "# " + "x" * MAX_YAML_BYTES + "\n")
    assert "modules/demo/module.yaml: file is 5.0 MB; at most 5 MB is read" in problems(root)
    root = build(tmp_path / "b", lessons={
        "01-big.md": "# Big\n\n" + "words " * (MAX_TEXT_BYTES // 6 + 1)})
    assert "modules/demo/lessons/01-big.md: file is 1.0 MB; at most 1 MB is read" in \
        problems(root)
    system = root / "systems" / "ehr.yaml"
    system.write_text("slug: ehr\nname: x\n" + "#" * (MAX_YAML_BYTES + 1))
    assert "systems/ehr.yaml: file is 5.0 MB; at most 5 MB is read" in problems(root)


def test_deep_nesting_is_a_problem_not_a_crash(tmp_path):
    root = build(tmp_path, BASE + "deep: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "modules/demo/module.yaml: YAML limit: values are nested too deeply" in \
        problems(root)


def _large_bank(questions: int, image_every: int) -> bytes:
    items = []
    for n in range(questions):
        if image_every and n % image_every == 0:
            items.append(question("Same name", '<p>Which?</p><img src="@@PLUGINFILE@@/s.png" '
                                               'alt="screen">', file("s.png", PNG)))
        else:
            items.append(question("Same name", f"<p>Which one, {n}?</p>"))
    return bank(*items)


def test_a_large_bank_with_repeated_names_converts(tmp_path):
    data = _large_bank(3000, 100)
    result = moodle_xml.parse_moodle_xml(data, assets_dir=tmp_path)
    assert result.unsupported == [] and result.warnings == []
    keys = [q.key for q in result.questions]
    assert keys[:3] == ["same-name", "same-name-2", "same-name-3"] and len(set(keys)) == 3000
    assert len(list((tmp_path / "images").iterdir())) == 30
    gift_bank = "\n\n".join(f"::Same name::Pick {n} {{=right ~wrong}}" for n in range(3000))
    converted = gift.parse_gift(gift_bank)
    assert len({q.key for q in converted.questions}) == 3000


def test_moodle_xml_conversion_streams_with_bounded_memory(tmp_path):
    """The file is ~6 MB of base64 images; streaming holds one question at a time, so the
    peak of Python allocations stays far below the file (the old tree parse held all of it)."""
    big_png = PNG + b"\0" * 200_000  # still a PNG by its bytes, 200 KB
    items = [question(f"Q{n}", '<p>Which?</p><img src="@@PLUGINFILE@@/s.png" alt="screen">',
                      file("s.png", big_png)) for n in range(30)]
    path = tmp_path / "bank.xml"
    path.write_bytes(bank(*items))
    assert path.stat().st_size > 7_500_000
    chunks: list[str] = []
    tracemalloc.start()
    try:
        result = moodle_xml.convert_moodle_xml_to_yaml(path, chunks.append,
                                                       assets_dir=tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.count, result.unsupported, result.warnings) == (30, [], [])
    assert result.questions == []  # streamed, not kept
    assert "".join(chunks).count("- id: q") == 30
    assert peak < 2_500_000, peak
