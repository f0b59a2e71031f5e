"""The grading rules content authors rely on, per item type, including the edges."""

from __future__ import annotations

import pytest

from lms_plugin.errors import ValidationFailed
from lms_plugin.quizzes.services import attempt_score, grade_question
from tests.learning.builders import QUESTIONS

DATA = {q["key"]: q["data"] for q in QUESTIONS}
SINGLE, MULTI, TF = DATA["verify-patient"], DATA["high-alert"], DATA["read-back"]
ORDER, MATCH, NUM, TEXT = (DATA["downtime-order"], DATA["match-alerts"], DATA["heparin-rate"],
                           DATA["name-the-form"])


def frac(question_type, data, response) -> float:
    return grade_question(question_type, data, response).fraction


# ---------------------------------------------------------------- single choice
def test_single_choice_right_wrong_and_option_feedback():
    right = grade_question("single_choice", SINGLE, "a")
    assert (right.fraction, right.correct) == (1.0, True)
    assert right.feedback == "Correct: two identifiers."
    wrong = grade_question("single_choice", SINGLE, "b")
    assert (wrong.fraction, wrong.correct, wrong.feedback) == (0.0, False, "Bed numbers change.")
    assert grade_question("single_choice", SINGLE, "c").feedback == ""


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_answers_score_zero_for_every_type(blank):
    for question in QUESTIONS:
        result = grade_question(question["type"], question["data"], blank)
        assert result.fraction == 0.0 and not result.correct, question["key"]


@pytest.mark.parametrize("bad", ["z", ["a"], True, 3.5])
def test_single_choice_unknown_option_is_422(bad):
    with pytest.raises(ValidationFailed) as info:
        grade_question("single_choice", SINGLE, bad)
    assert info.value.status_code == 422


# ---------------------------------------------------------------- multiple response
@pytest.mark.parametrize(("chosen", "expected"), [
    (["a", "b"], 1.0),        # exact set
    (["b", "a"], 1.0),        # order does not matter
    (["a"], 0.5),             # one of two correct
    (["a", "b", "c"], 0.5),   # (2 - 1) / 2
    (["a", "c"], 0.0),        # (1 - 1) / 2
    (["c"], 0.0),             # max(0, (0 - 1) / 2)
    (["a", "a"], 0.5),        # duplicates count once
    ([], 0.0),
])
def test_multiple_response_partial_credit(chosen, expected):
    assert frac("multiple_response", MULTI, chosen) == expected


def test_multiple_response_partial_is_the_default_scoring():
    data = {k: v for k, v in MULTI.items() if k != "scoring"}
    assert frac("multiple_response", data, ["a"]) == 0.5


@pytest.mark.parametrize(("chosen", "expected"), [
    (["a", "b"], 1.0), (["a"], 0.0), (["a", "b", "c"], 0.0), (["c"], 0.0)])
def test_multiple_response_all_or_nothing(chosen, expected):
    data = {**MULTI, "scoring": "all_or_nothing"}
    assert frac("multiple_response", data, chosen) == expected


def test_multiple_response_feedback_joins_chosen_options():
    data = {"options": [{"id": "a", "text": "A", "feedback": "A is right."},
                        {"id": "b", "text": "B", "feedback": "B is wrong."}], "answer": ["a"]}
    assert grade_question("multiple_response", data, ["a", "b"]).feedback == \
        "A is right. B is wrong."


def test_multiple_response_unknown_option_is_422():
    with pytest.raises(ValidationFailed):
        grade_question("multiple_response", MULTI, ["a", "zz"])
    with pytest.raises(ValidationFailed):
        grade_question("multiple_response", MULTI, {"a": 1})


# ---------------------------------------------------------------- true/false
@pytest.mark.parametrize(("given", "expected", "feedback"), [
    (True, 1.0, "Yes: always."), ("true", 1.0, "Yes: always."), ("TRUE", 1.0, "Yes: always."),
    (False, 0.0, "They must."), ("false", 0.0, "They must.")])
def test_true_false(given, expected, feedback):
    result = grade_question("true_false", TF, given)
    assert (result.fraction, result.feedback) == (expected, feedback)


def test_true_false_answer_false_and_no_feedback():
    assert frac("true_false", {"answer": False}, "false") == 1.0
    assert grade_question("true_false", {"answer": False}, True).feedback == ""


@pytest.mark.parametrize("bad", ["yes", 1, ["true"]])
def test_true_false_other_values_are_422(bad):
    with pytest.raises(ValidationFailed):
        grade_question("true_false", TF, bad)


# ---------------------------------------------------------------- ordering
@pytest.mark.parametrize(("given", "expected"), [
    (["b", "a", "c"], 1.0), (["a", "b", "c"], 0.0), (["b", "c", "a"], 0.0), (["b", "a"], 0.0),
])
def test_ordering_all_or_nothing_by_default(given, expected):
    assert frac("ordering", ORDER, given) == expected


@pytest.mark.parametrize(("given", "expected"), [
    (["b", "a", "c"], 1.0),
    (["b", "c", "a"], 1 / 3),          # only b in place
    (["a", "b", "c"], 1 / 3),          # only c in place
    (["c", "b", "a"], 0.0),
    (["b", "a", None], 2 / 3),         # a blank position scores nothing
    (["b", "b", "c"], 2 / 3),          # a repeated item is wrong at its second place
])
def test_ordering_partial_share_in_correct_position(given, expected):
    assert frac("ordering", {**ORDER, "scoring": "partial"}, given) == pytest.approx(expected)


def test_ordering_rejects_unknown_items_and_extra_positions():
    with pytest.raises(ValidationFailed):
        grade_question("ordering", ORDER, ["b", "x", "c"])
    with pytest.raises(ValidationFailed):
        grade_question("ordering", ORDER, ["b", "a", "c", "a"])
    with pytest.raises(ValidationFailed):
        grade_question("ordering", ORDER, "bac")


# ---------------------------------------------------------------- matching
def test_matching_share_of_prompts_matched():
    right, wrong = "Review and document override reason", "Discontinue one order"
    assert frac("matching", MATCH, {"p1": right, "p2": wrong}) == 1.0
    assert frac("matching", MATCH, {"p1": right, "p2": "Ignore the alert"}) == 0.5
    assert frac("matching", MATCH, {"p1": right, "p2": right}) == 0.5
    assert frac("matching", MATCH, {"p1": right}) == 0.5
    assert frac("matching", MATCH, {"p1": wrong, "p2": right}) == 0.0


def test_matching_rejects_unknown_prompts_and_matches():
    with pytest.raises(ValidationFailed):
        grade_question("matching", MATCH, {"p9": "Discontinue one order"})
    with pytest.raises(ValidationFailed):
        grade_question("matching", MATCH, {"p1": "Something invented"})
    with pytest.raises(ValidationFailed):
        grade_question("matching", MATCH, ["p1"])


# ---------------------------------------------------------------- numeric
@pytest.mark.parametrize(("given", "expected"), [
    ("10", 1.0), (10, 1.0), ("10.0", 1.0), (" 10 ", 1.0),
    ("10.1", 1.0), ("9.9", 1.0),          # inclusive at both edges
    ("10.1001", 0.0), ("9.8999", 0.0),    # just outside
    ("1,0", None), ("ten", None), ("", 0.0),
])
def test_numeric_absolute_tolerance_edges(given, expected):
    if expected is None:
        with pytest.raises(ValidationFailed) as info:
            grade_question("numeric", NUM, given)
        assert info.value.status_code == 422
    else:
        assert frac("numeric", NUM, given) == expected


def test_numeric_exact_when_no_tolerance_and_decimal_safe_edges():
    assert frac("numeric", {"answer": 2.5}, "2.5") == 1.0
    assert frac("numeric", {"answer": 2.5}, "2.50001") == 0.0
    # 0.4 - 0.3 is 0.10000000000000003 in binary floats: still inside a 0.1 tolerance.
    assert frac("numeric", {"answer": 0.3, "tolerance": 0.1}, "0.4") == 1.0


def test_numeric_percent_tolerance():
    data = {"answer": 250, "tolerance": 2, "tolerance_type": "percent"}  # ±5
    assert frac("numeric", data, "255") == 1.0
    assert frac("numeric", data, "245") == 1.0
    assert frac("numeric", data, "255.01") == 0.0
    negative = {"answer": -40, "tolerance": 10, "tolerance_type": "percent"}  # ±4
    assert frac("numeric", negative, "-44") == 1.0
    assert frac("numeric", negative, "-44.5") == 0.0


def test_numeric_accepts_thousands_separators():
    assert frac("numeric", {"answer": 25000}, "25,000") == 1.0


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", True, float("nan"), [10], "1e"])
def test_numeric_non_numbers_are_422(bad):
    with pytest.raises(ValidationFailed):
        grade_question("numeric", NUM, bad)


# ---------------------------------------------------------------- short text
@pytest.mark.parametrize(("given", "expected"), [
    ("paper MAR", 1.0), ("PAPER mar", 1.0), ("  paper \t  mar\n", 1.0),
    ("Downtime  Medication Order  Form", 1.0), ("paper", 0.0), ("papermar", 0.0)])
def test_short_text_case_and_space_insensitive(given, expected):
    assert frac("short_text", TEXT, given) == expected


def test_short_text_non_string_is_422():
    with pytest.raises(ValidationFailed):
        grade_question("short_text", TEXT, ["paper MAR"])


def test_unknown_type_is_refused():
    with pytest.raises(ValidationFailed):
        grade_question("essay", {}, "x")


# ---------------------------------------------------------------- attempt score
def test_attempt_score_weights_points_and_rounds_to_two_decimals():
    assert attempt_score([(1, 1.0), (1, 0.0), (1, 0.0)]) == 33.33
    assert attempt_score([(2, 1.0), (1, 0.0)]) == 66.67
    assert attempt_score([(1, 0.5), (3, 1.0)]) == 87.5
    assert attempt_score([]) == 0.0
