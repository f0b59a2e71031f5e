"""GIFT and Moodle XML question banks: import of Moodle-style exports, export, round trips."""

from __future__ import annotations

import yaml

from lms_plugin.catalog import gift, moodle_xml
from lms_plugin.catalog.content_format import load_content
from tests.catalog.helpers import SAMPLES, VALID, copy_valid, import_valid


def _by_key(result):
    return {q.key: q for q in result.questions}


def test_gift_sample_maps_every_supported_type():
    result = gift.parse_gift((SAMPLES / "moodle-export.gift.txt").read_text())
    questions = _by_key(result)
    assert [q.type for q in result.questions] == [
        "single_choice", "multiple_response", "true_false", "matching", "numeric",
        "short_text", "numeric", "single_choice"]
    single = questions["two-identifiers"]
    assert single.prompt == ("Before giving a medication, which two identifiers do you check "
                             "against the wristband?")
    assert single.data["answer"] == "a"
    assert single.data["options"][0] == {
        "id": "a", "text": "Full name and date of birth",
        "feedback": "Correct: these are the two approved identifiers."}
    multiple = questions["high-alert-medications"]
    assert multiple.data["answer"] == ["a", "b"] and multiple.data["scoring"] == "partial"
    true_false = questions["scan-before-give"]
    assert true_false.data["answer"] is True
    # GIFT: first feedback for a wrong answer, second for a right one
    assert true_false.data["feedback"] == {"true": "Right: patient first, then medication.",
                                           "false": "Scanning the wristband first is the rule."}
    matching = questions["override-reasons"]
    assert [p["prompt"] for p in matching.data["pairs"]] == [
        "Wrong patient", "Early dose", "Unreadable barcode"]
    assert matching.data["distractors"] == ["Ignore the alert and give the dose"]
    numeric = questions["heparin-rate"]
    assert (numeric.data["answer"], numeric.data["tolerance"]) == (10, 0.1)
    assert numeric.explanation == ("Divide the dose per hour by the concentration "
                                   "(100 units/mL).")
    assert (questions["range-answer"].data["answer"],
            questions["range-answer"].data["tolerance"]) == (300, 10)
    assert questions["downtime-form"].data["accepted"] == [
        "downtime medication order form", "paper MAR"]
    assert questions["missing-word"].prompt == (
        "The barcode scanner must be _____ at the end of the shift.")
    assert result.unsupported == [
        "question 8 (line 45, 'Describe an override'): essay is not supported",
        "question 9 (line 48, 'Section intro'): description (no answer block) is not supported",
    ]


def test_moodle_xml_sample_maps_every_supported_type():
    result = moodle_xml.parse_moodle_xml((SAMPLES / "moodle-export.xml").read_bytes())
    questions = _by_key(result)
    assert [q.type for q in result.questions] == [
        "single_choice", "multiple_response", "true_false", "matching", "numeric",
        "short_text", "ordering"]
    single = questions["verify-patient"]  # idnumber becomes the id
    assert single.prompt == "Before signing an order, what must you confirm first?"
    assert single.explanation == "Two identifiers prevent wrong-patient orders."
    assert single.data["options"][1] == {"id": "b", "text": "The bed number",
                                         "feedback": "Bed numbers change."}
    multiple = questions["high-alert-medications"]
    assert multiple.data["answer"] == ["a", "b"] and multiple.data["points"] == 2
    assert questions["read-back-verbal-orders"].data == {
        "answer": True, "points": 1,
        "feedback": {"true": "Yes: read back and confirm.", "false": "They must be read back."}}
    assert questions["match-alerts"].data["distractors"] == ["Ignore the alert"]
    assert questions["heparin-rate"].data == {"answer": 10, "tolerance": 0.1,
                                              "tolerance_type": "absolute",
                                              "units": "mL/hour", "points": 1}
    ordering = questions["downtime-order-steps"]
    texts = {i["id"]: i["text"] for i in ordering.data["items"]}
    assert [texts[i] for i in ordering.data["answer"]] == [
        "Check downtime status", "Write the order on the paper form", "Back-enter the order"]
    assert ordering.data["scoring"] == "partial"  # ABSOLUTE_POSITION
    assert result.unsupported == [
        "question 8 'Describe an override' (type essay): essay questions are not supported",
        "question 9 'Section intro' (type description): description questions are not "
        "supported",
        "question 10 'Cloze dose' (type multianswer): cloze (multianswer) questions are not "
        "supported",
    ]


def test_moodle_xml_refuses_entities_and_reports_broken_files():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE quiz [<!ENTITY a "aaaa">]>'
            b"<quiz><question type='essay'><name><text>&a;</text></name></question></quiz>")
    refused = moodle_xml.parse_moodle_xml(bomb)
    assert refused.questions == [] and "refused" in refused.unsupported[0]
    broken = moodle_xml.parse_moodle_xml(b"<quiz><question>")
    assert broken.questions == [] and "not valid XML" in broken.unsupported[0]
    wrong_root = moodle_xml.parse_moodle_xml(b"<html/>")
    assert wrong_root.unsupported == ["expected a <quiz> root element, found <html>"]


def test_bank_items_that_would_not_validate_are_reported():
    result = gift.parse_gift("::Lonely match::Match it {=one -> 1}\n\n"
                             "::No right answer::Pick {~a ~b}\n")
    assert result.questions == []
    assert result.unsupported[0].startswith("question 1 (line 1, 'Lonely match'): 'pairs' "
                                            "needs at least 2 entries")
    assert result.unsupported[1] == ("question 2 (line 3, 'No right answer'): multiple choice "
                                     "without a right answer (no '=' answer and no positive "
                                     "%weight%)")


def test_cli_import_gift_prints_questions_yaml_that_validates(app, tmp_path):
    runner = app.test_cli_runner()
    out = tmp_path / "questions.yaml"
    result = runner.invoke(args=["content", "import-gift",
                                 str(SAMPLES / "moodle-export.gift.txt"), "-o", str(out)])
    assert result.exit_code == 1  # two questions were not converted
    assert "not converted: question 8 (line 45, 'Describe an override'): essay" in result.output
    assert "8 question(s) converted, 2 not converted, 0 warning(s)." in result.output
    # Paste the questions into a module: it validates as content.
    root = copy_valid(tmp_path)
    module_yaml = root / "modules" / "bcma-scanning" / "module.yaml"
    text = module_yaml.read_text().split("questions:")[0]
    module_yaml.write_text(text + out.read_text())
    bundle = load_content(root)
    assert bundle.problems == []
    module = next(m for m in bundle.modules if m.slug == "bcma-scanning")
    assert len(module.questions) == 8

    stdout = runner.invoke(args=["content", "import-moodle-xml",
                                 str(SAMPLES / "moodle-export.xml")])
    assert stdout.exit_code == 1
    parsed = yaml.safe_load(stdout.stdout)
    assert [q["id"] for q in parsed["questions"]][:2] == ["verify-patient",
                                                          "high-alert-medications"]


def test_export_gift_reports_ordering_and_round_trips(app, tmp_path):
    import_valid(app, "Default Health System")
    runner = app.test_cli_runner()
    out = tmp_path / "bank.gift"
    result = runner.invoke(args=["content", "export-gift", "safe-ordering", "-o", str(out)])
    assert result.exit_code == 1
    assert ("not converted: question 4 'downtime-order': ordering has no GIFT form; use "
            "Moodle XML") in result.output
    back = _by_key(gift.parse_gift(out.read_text()))
    original = {q.key: q for q in load_content(VALID).modules[1].questions}
    assert set(back) == set(original) - {"downtime-order"}
    for key in ("verify-patient", "high-alert", "read-back", "match-alerts", "name-the-form"):
        assert back[key].type == original[key].type
        assert back[key].data == original[key].data, key
        assert back[key].explanation == original[key].explanation
    assert back["heparin-rate"].data["answer"] == 10
    assert back["heparin-rate"].data["tolerance"] == 0.1
    assert "$CATEGORY: safe-ordering" in out.read_text()


def test_export_moodle_xml_round_trips_every_type(app, tmp_path):
    import_valid(app, "Default Health System")
    result = app.test_cli_runner().invoke(args=["content", "export-moodle-xml",
                                                "safe-ordering"])
    assert result.exit_code == 0, result.output
    back = moodle_xml.parse_moodle_xml(result.stdout.encode())
    assert back.unsupported == []
    original = load_content(VALID).modules[1].questions
    assert [q.key for q in back.questions] == [q.key for q in original]
    for got, want in zip(back.questions, original, strict=True):
        assert (got.type, got.prompt, got.explanation) == (want.type, want.prompt,
                                                           want.explanation)
        if got.type == "ordering":
            order = lambda q: [next(i["text"] for i in q.data["items"] if i["id"] == a)  # noqa: E731
                               for a in q.data["answer"]]
            assert order(got) == order(want)
        else:
            assert got.data == want.data, got.key


def test_export_of_an_unknown_module_fails_cleanly(app, factory):
    factory.organisation("Default Health System")
    result = app.test_cli_runner().invoke(args=["content", "export-gift", "nothing"])
    assert result.exit_code == 1
    assert "no module 'nothing'" in result.output
