"""Moodle XML images (issue 9 item 4): a question text's ``@@PLUGINFILE@@`` image carried as
a base64 ``<file>`` becomes a module image (sniffed, size-limited), the prompt references it
the way content does (``![alt](images/…)``), it is imported as a ``ContentAsset`` and the quiz
page shows it; anything that cannot be imported is a warning naming the question."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import zlib

import pytest
from sqlalchemy import select

from lms_plugin.catalog import moodle_xml
from lms_plugin.catalog.content_format import MAX_IMAGE_BYTES, load_content
from lms_plugin.catalog.models import ContentAsset, Module
from lms_plugin.extensions import db
from tests.catalog.helpers import copy_valid
from tests.conftest import csrf_token


@pytest.fixture(autouse=True)
def _first_organisation(factory) -> None:
    """What the first-run setup leaves: one organisation (commands never create one)."""
    factory.organisation("Default Health System")



def png(width: int = 4, height: int = 3) -> bytes:
    raw = b"".join(b"\x00" + b"\x80\x10\x10" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


PNG = png()


def question(name: str, text: str, files: str = "", answers: str | None = None) -> str:
    answers = answers if answers is not None else (
        '<answer fraction="100"><text>Stop and call pharmacy</text></answer>'
        '<answer fraction="0"><text>Give the dose</text></answer>')
    return (f'<question type="multichoice"><name><text>{name}</text></name>'
            f'<questiontext format="html"><text><![CDATA[{text}]]></text>{files}</questiontext>'
            f"<single>true</single>{answers}</question>")


def file(name: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    encoded = base64.b64encode(data).decode()
    return f'<file name="{name}" path="/" encoding="base64">{encoded}</file>'


def bank(*questions: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><quiz>' + "".join(questions)
            + "</quiz>").encode()


SHOWN = ('<p>What does this alert mean?</p><p><img src="@@PLUGINFILE@@/alert%20screen.png" '
         'alt="The dose alert" width="300"></p>')


def test_embedded_image_is_written_and_the_prompt_references_it(tmp_path):
    result = moodle_xml.parse_moodle_xml(bank(question("Dose alert", SHOWN,
                                                       file("alert screen.png", PNG))),
                                         assets_dir=tmp_path)
    assert result.unsupported == [] and result.warnings == []
    (converted,) = result.questions
    assert converted.prompt == ("What does this alert mean?\n"
                                "![The dose alert](images/dose-alert-alert-screen.png)")
    assert (tmp_path / "images" / "dose-alert-alert-screen.png").read_bytes() == PNG


def test_images_that_cannot_be_imported_warn_per_question(tmp_path):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_IMAGE_BYTES + 10)
    result = moodle_xml.parse_moodle_xml(bank(
        question("Missing file", SHOWN),
        question("Too big", SHOWN, file("alert screen.png", big)),
        question("Not an image", SHOWN, file("alert screen.png", b"MZ\x90\x00 an .exe")),
        question("Web image", '<p>See <img src="https://cdn.example.com/a.png" alt="web"></p>'),
        question("Bad base64", SHOWN, '<file name="alert screen.png" path="/" '
                                      'encoding="base64">@@@</file>'),
    ), assets_dir=tmp_path)
    assert [q.prompt for q in result.questions][:2] == [
        "What does this alert mean?\n[image: The dose alert]"] * 2
    assert result.warnings == [
        "question 1 'Missing file' (type multichoice): image 'alert screen.png' is shown but "
        "its file is not in the bank: not imported",
        "question 2 'Too big' (type multichoice): image 'alert screen.png' is 5.0 MB; images "
        "may be at most 5 MB: not imported",
        "question 3 'Not an image' (type multichoice): 'alert screen.png' is not a PNG, JPEG, "
        "GIF, WebP or SVG image (by its content): not imported",
        "question 4 'Web image' (type multichoice): image 'https://cdn.example.com/a.png' is "
        "not embedded in the bank: not imported (pages cannot load images from other sites)",
        "question 5 'Bad base64' (type multichoice): 'alert screen.png' is not a PNG, JPEG, "
        "GIF, WebP or SVG image (by its content): not imported",
    ]
    assert not (tmp_path / "images").exists()


def test_without_an_output_folder_the_image_is_named_in_a_warning():
    result = moodle_xml.parse_moodle_xml(bank(question("Dose alert", SHOWN,
                                                       file("alert screen.png", PNG))))
    assert result.warnings == [
        "question 1 'Dose alert' (type multichoice): image 'alert screen.png' not written: "
        "give an output file (-o) so images can be written beside it"]


def test_image_only_answer_options_say_so():
    only = ('<answer fraction="100"><text><![CDATA[<img src="@@PLUGINFILE@@/a.png">]]></text>'
            '</answer><answer fraction="0"><text>Give the dose</text></answer>')
    mixed = ('<answer fraction="100"><text><![CDATA[Stop <img src="@@PLUGINFILE@@/s.png">]]>'
             '</text></answer><answer fraction="0"><text>Give the dose</text></answer>')
    result = moodle_xml.parse_moodle_xml(bank(question("Pick the screen", "Which?",
                                                       answers=only),
                                              question("Mixed", "Which?", answers=mixed)))
    assert result.unsupported == [
        "question 1 'Pick the screen' (type multichoice): option a is an image only ('a.png'): "
        "answer options, items and matches must have text (images are shown in question "
        "prompts only)"]
    assert [q.data["options"][0]["text"] for q in result.questions] == ["Stop"]
    assert result.warnings == [
        "question 2 'Mixed' (type multichoice): image 's.png' in option a not imported: images "
        "are shown in question prompts only (its text is kept)"]


def test_image_only_matching_prompt_is_not_taken_for_a_distractor():
    result = moodle_xml.parse_moodle_xml(bank(
        '<question type="matching"><name><text>Match</text></name>'
        "<questiontext><text>Match the screens</text></questiontext>"
        '<subquestion format="html"><text><![CDATA[<img src="@@PLUGINFILE@@/a.png">]]></text>'
        "<answer><text>Order entry</text></answer></subquestion>"
        '<subquestion format="html"><text>MAR</text><answer><text>Charting</text></answer>'
        "</subquestion></question>"))
    assert result.questions == []
    assert result.unsupported[0].startswith("question 1 'Match' (type matching): matching "
                                            "prompt 1 is an image only ('a.png')")


def test_cli_writes_images_beside_the_yaml_and_the_module_imports_and_shows_them(
        app, client, login_as, tmp_path):
    source = tmp_path / "bank.xml"
    source.write_bytes(bank(question("Dose alert", SHOWN, file("alert screen.png", PNG))))
    out = tmp_path / "converted" / "questions.yaml"
    out.parent.mkdir()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["content", "import-moodle-xml", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 question(s) converted, 0 not converted, 0 warning(s)." in result.output
    assert "images/dose-alert-alert-screen.png" in out.read_text()

    # Paste the YAML into a module and copy images/ beside module.yaml, as the README says.
    root = copy_valid(tmp_path)
    folder = root / "modules" / "bcma-scanning"
    text = (folder / "module.yaml").read_text().replace("status: draft", "status: published")
    (folder / "module.yaml").write_text(text.split("questions:")[0] + out.read_text())
    shutil.copytree(out.parent / "images", folder / "images")
    assert load_content(root).problems == []
    assert runner.invoke(args=["org", "create", "General Hospital"]).exit_code == 0
    imported = runner.invoke(args=["content", "import", str(root), "--organisation",
                                   "General Hospital"])
    assert imported.exit_code == 0, imported.output
    with app.app_context():
        module = db.session.scalar(select(Module).where(Module.slug == "bcma-scanning"))
        asset = db.session.scalar(select(ContentAsset).where(ContentAsset.module_id == module.id))
        assert (asset.path, asset.content_type, asset.data) == (
            "images/dose-alert-alert-screen.png", "image/png", PNG)
        module_id = module.id

    login_as("learner")
    token = csrf_token(client, "/modules/bcma-scanning")
    assert client.post("/modules/bcma-scanning/quiz/start",
                       data={"csrf_token": token}).status_code == 302
    page = client.get("/modules/bcma-scanning/quiz").get_data(as_text=True)
    src = f"/content/{module_id}/images/dose-alert-alert-screen.png"
    assert f'<img class="question-image" src="{src}" alt="The dose alert">' in page
    assert "![" not in page
    image = client.get(src)
    assert (image.status_code, image.mimetype, image.data) == (200, "image/png", PNG)


def test_question_prompt_images_are_checked_like_lesson_images(tmp_path):
    root = copy_valid(tmp_path)
    module_yaml = root / "modules" / "bcma-scanning" / "module.yaml"
    text = module_yaml.read_text()
    text = text.replace("prompt: Scan the wristband before the medication.",
                        'prompt: "Scan first: ![the wristband](images/wristband.png)"')
    module_yaml.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "wristband.png" in row)
    problems = [str(p) for p in load_content(root).problems]
    assert problems == [f"modules/bcma-scanning/module.yaml:{line}: image "
                        "'images/wristband.png' not found: expected "
                        "modules/bcma-scanning/images/wristband.png"]
    (root / "modules" / "bcma-scanning" / "images").mkdir()
    (root / "modules" / "bcma-scanning" / "images" / "wristband.png").write_bytes(PNG)
    bundle = load_content(root)
    assert bundle.problems == []
    module = next(m for m in bundle.modules if m.slug == "bcma-scanning")
    assert [(a.path, a.content_type) for a in module.assets] == [("images/wristband.png",
                                                                  "image/png")]


def test_lesson_images_are_sniffed_and_size_limited(tmp_path):
    root = copy_valid(tmp_path)
    images = root / "modules" / "safe-ordering" / "images"
    banner = images / "banner.svg"
    banner.write_bytes(PNG)  # a PNG named .svg
    problems = [str(p) for p in load_content(root).problems]
    assert "modules/safe-ordering/images/banner.svg: 'banner.svg' is named as image/svg+xml " \
           "but its content is image/png: rename it to banner.png" in problems
    banner.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>" + b" " * MAX_IMAGE_BYTES)
    problems = [str(p) for p in load_content(root).problems]
    assert any(re.fullmatch(r"modules/safe-ordering/images/banner\.svg: image is 5\.0 MB; "
                            r"images may be at most 5 MB", p) for p in problems), problems


def test_gift_images_are_named_in_warnings_and_image_only_options_say_so():
    from lms_plugin.catalog import gift

    result = gift.parse_gift(
        '::Alert::[html]<p>What does this mean?</p><img src="@@PLUGINFILE@@/a.png"> '
        "{=Stop ~Go}\n\n"
        '::Pick::[html]Which screen? {=<img src\\="@@PLUGINFILE@@/b.png"> ~Other}\n')
    assert [q.prompt for q in result.questions] == ["What does this mean?"]
    assert result.warnings == [
        "question 1 (line 1, 'Alert'): image '@@PLUGINFILE@@/a.png' not imported: GIFT files "
        "do not carry images (export the bank as Moodle XML to keep them)"]
    assert result.unsupported == [
        "question 2 (line 3, 'Pick'): option a is an image only ('@@PLUGINFILE@@/b.png'): "
        "answer options must have text (GIFT files do not carry images)"]


def test_export_embeds_question_images_and_reimport_restores_them(app, tmp_path):
    root = copy_valid(tmp_path)
    module_yaml = root / "modules" / "bcma-scanning" / "module.yaml"
    module_yaml.write_text(module_yaml.read_text().replace(
        "prompt: Scan the wristband before the medication.",
        'prompt: "Scan first: ![the wristband](images/wristband.png)"'))
    (root / "modules" / "bcma-scanning" / "images").mkdir()
    (root / "modules" / "bcma-scanning" / "images" / "wristband.png").write_bytes(PNG)
    runner = app.test_cli_runner()
    imported = runner.invoke(args=["content", "import", str(root)])
    assert imported.exit_code == 0, imported.output

    exported = runner.invoke(args=["content", "export-moodle-xml", "bcma-scanning"])
    assert exported.exit_code == 0, exported.output
    assert f'<file name="wristband.png" path="/" encoding="base64">' \
           f"{base64.b64encode(PNG).decode()}</file>" in exported.stdout
    back = moodle_xml.parse_moodle_xml(exported.stdout.encode(), assets_dir=tmp_path / "back")
    assert back.warnings == [] and back.unsupported == []
    scan = next(q for q in back.questions if q.key == "scan-first")
    assert scan.prompt == "Scan first: ![the wristband](images/scan-first-wristband.png)"
    assert (tmp_path / "back" / "images" / "scan-first-wristband.png").read_bytes() == PNG

    as_gift = runner.invoke(args=["content", "export-gift", "bcma-scanning"])
    assert "warning: question 1 'scan-first': image 'images/wristband.png' not exported: GIFT " \
           "files do not carry images; use Moodle XML" in as_gift.output


def test_prompt_filter_escapes_text_and_shows_only_module_images(app):
    render = app.jinja_env.filters["question_text"]
    html = str(render("2*3 <b>x</b> _____ ![Screen](images/a.png) ![web](https://e.org/x.png) "
                      "![up](images/../secret.png)", 7))
    assert html == ('2*3 &lt;b&gt;x&lt;/b&gt; _____ <img class="question-image" '
                    'src="/content/7/images/a.png" alt="Screen"> ![web](https://e.org/x.png) '
                    "![up](images/../secret.png)")
