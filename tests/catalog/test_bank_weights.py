"""Partial credit in question banks (issue 9 item 3): GIFT ``%n%`` weights and Moodle XML
``fraction``. The quiz engine has no per-option credit (single choice scores 1 or 0), so a
weight the converted type cannot carry is dropped with a warning naming the question."""

from __future__ import annotations

from lms_plugin.catalog import gift, moodle_xml


def _one(result):
    assert result.unsupported == []
    assert len(result.questions) == 1
    return result.questions[0]


def test_gift_single_answer_with_a_weighted_wrong_answer_stays_single_choice():
    result = gift.parse_gift("::Colour::Which colour means stop? {=Red ~%50%Yellow ~Purple}\n")
    question = _one(result)
    assert question.type == "single_choice"
    assert question.data["answer"] == "a"
    assert [o["text"] for o in question.data["options"]] == ["Red", "Yellow", "Purple"]
    assert result.warnings == [
        "question 1 (line 1, 'Colour'): partial credit dropped for 'Yellow' (50%): "
        "single_choice scores 1 for the '=' answer and 0 for any other (the quiz engine has "
        "no per-option credit)"]


def test_gift_explicit_full_weight_and_negative_weights_on_a_single_answer():
    result = gift.parse_gift("::Dose::Pick {=%100%Ten ~%-50%Twenty ~Thirty}\n")
    question = _one(result)
    assert (question.type, question.data["answer"]) == ("single_choice", "a")
    assert result.warnings == [
        "question 1 (line 1, 'Dose'): partial credit dropped for 'Twenty' (-50%): "
        "single_choice scores 1 for the '=' answer and 0 for any other (the quiz engine has "
        "no per-option credit)"]


def test_gift_equal_positive_weights_are_multiple_response_without_warning():
    result = gift.parse_gift("::Three::Pick all {~%33.333%A ~%33.333%B ~%33.334%C ~%-100%D}"
                             "\n\n::Two::Pick {~%50%A ~%50%B ~C}\n")
    three, two = result.questions
    assert result.unsupported == []
    assert (three.type, three.data["answer"]) == ("multiple_response", ["a", "b", "c"])
    assert (two.type, two.data["answer"]) == ("multiple_response", ["a", "b"])
    assert result.warnings == []  # 33.333 vs 33.334 is how thirds are written


def test_gift_unequal_weights_keep_every_positive_option_and_warn():
    result = gift.parse_gift("::Uneven::Pick {~%70%A ~%30%B ~%-100%C}\n")
    question = _one(result)
    assert question.data["answer"] == ["a", "b"]
    assert result.warnings == [
        "question 1 (line 1, 'Uneven'): partial credit dropped for 'A' (70%), 'B' (30%): "
        "multiple_response gives each right option an equal share (the quiz engine has no "
        "per-option credit)"]


def test_gift_single_answer_without_full_credit_is_reported():
    result = gift.parse_gift("::Half::Pick {=%50%A ~B}\n")
    assert result.questions == []
    assert result.unsupported == [
        "question 1 (line 1, 'Half'): single-answer multiple choice with 0 full-credit answers "
        "(one '=' answer, or %weights% without '=' for several right answers)"]


def test_gift_numeric_and_short_answer_partial_answers_are_dropped_with_a_warning():
    result = gift.parse_gift("::Rate::Rate? {#=10:0.1 =%50%10:1}\n\n"
                             "::Form::Name the form {=downtime form =%50%paper}\n")
    rate, form = result.questions
    assert (rate.data["answer"], rate.data["tolerance"]) == (10, 0.1)
    assert form.data["accepted"] == ["downtime form"]
    assert result.warnings == [
        "question 1 (line 1, 'Rate'): answers '10:1' (50%) dropped: numeric keeps the first "
        "full-credit answer and scores 1 or 0",
        "question 2 (line 3, 'Form'): answer 'paper' (50%) dropped: short_text answers score "
        "1 or 0 (no partial credit)"]


def _xml(question: str) -> bytes:
    return f'<?xml version="1.0"?><quiz>{question}</quiz>'.encode()


def _mc(single: str, *answers: tuple[str, str]) -> bytes:
    body = "".join(f'<answer fraction="{f}"><text>{t}</text></answer>' for f, t in answers)
    return _xml(f'<question type="multichoice"><name><text>Colour</text></name>'
                f'<questiontext format="html"><text>Stop?</text></questiontext>'
                f"<single>{single}</single>{body}</question>")


def test_moodle_single_answer_fractions_keep_the_100_answer_and_warn():
    result = moodle_xml.parse_moodle_xml(_mc("true", ("100", "Red"), ("50", "Yellow"),
                                             ("0", "Purple")))
    question = _one(result)
    assert (question.type, question.data["answer"]) == ("single_choice", "a")
    assert result.warnings == [
        "question 1 'Colour' (type multichoice): partial credit dropped for 'Yellow' (50%): "
        "single_choice scores 1 for the 100% answer and 0 for any other (the quiz engine has "
        "no per-option credit)"]


def test_moodle_multiple_fractions_equal_and_unequal():
    equal = moodle_xml.parse_moodle_xml(_mc("false", ("50", "A"), ("50", "B"), ("-100", "C")))
    assert _one(equal).data["answer"] == ["a", "b"] and equal.warnings == []
    uneven = moodle_xml.parse_moodle_xml(_mc("false", ("70", "A"), ("30", "B"), ("0", "C")))
    assert _one(uneven).data["answer"] == ["a", "b"]
    assert uneven.warnings == [
        "question 1 'Colour' (type multichoice): partial credit dropped for 'A' (70%), 'B' "
        "(30%): multiple_response gives each right option an equal share (the quiz engine has "
        "no per-option credit)"]


def test_moodle_numeric_and_short_answer_partial_answers_warn():
    result = moodle_xml.parse_moodle_xml(_xml(
        '<question type="numerical"><name><text>Rate</text></name>'
        '<questiontext><text>Rate?</text></questiontext>'
        '<answer fraction="100"><text>10</text><tolerance>0.1</tolerance></answer>'
        '<answer fraction="50"><text>10</text><tolerance>1</tolerance></answer>'
        '<answer fraction="0"><text>*</text></answer></question>'
        '<question type="shortanswer"><name><text>Form</text></name>'
        '<questiontext><text>Form?</text></questiontext>'
        '<answer fraction="100"><text>downtime form</text></answer>'
        '<answer fraction="50"><text>paper</text></answer></question>'))
    assert [q.type for q in result.questions] == ["numeric", "short_text"]
    assert result.warnings == [
        "question 1 'Rate' (type numerical): answers '10' (50%) dropped: numeric keeps the "
        "first 100% answer and scores 1 or 0",
        "question 2 'Form' (type shortanswer): answers 'paper' (50%) dropped: short_text "
        "answers score 1 or 0 (no partial credit)"]


def test_cli_prints_the_warning_and_still_converts(app, tmp_path):
    bank = tmp_path / "bank.gift"
    bank.write_text("::Colour::Which colour means stop? {=Red ~%50%Yellow ~Purple}\n")
    out = tmp_path / "questions.yaml"
    result = app.test_cli_runner().invoke(args=["content", "import-gift", str(bank), "-o",
                                                str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: question 1 (line 1, 'Colour'): partial credit dropped for 'Yellow'" \
        in result.output
    assert "1 question(s) converted, 0 not converted, 1 warning(s)." in result.output
    assert "type: single_choice" in out.read_text()
    assert "answer: a" in out.read_text()
