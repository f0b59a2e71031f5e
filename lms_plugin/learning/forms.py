"""Quiz forms. The questions are dynamic (drawn per attempt), so the answer fields are read
from the posted data against the attempt's own questions; Flask-WTF still guards CSRF."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, IntegerField
from wtforms.validators import DataRequired, NumberRange, Optional

from lms_plugin.catalog.models import Question
from lms_plugin.db import DB_INT_MAX


class StartQuizForm(FlaskForm):
    preview = HiddenField()


class SubmitQuizForm(FlaskForm):
    attempt_id = IntegerField(validators=[DataRequired(), NumberRange(min=1, max=DB_INT_MAX)])
    submission_key = HiddenField(validators=[Optional()])
    preview = HiddenField()


def field_name(question: Question, part: str | int | None = None) -> str:
    return f"q{question.id}" if part is None else f"q{question.id}-{part}"


def responses_from_form(questions: Sequence[Question], orders: dict[str, list[str]],
                        form: MultiDict) -> dict[int, Any]:
    """The service's response shapes from the attempt page's controls (see the template)."""
    responses: dict[int, Any] = {}
    for question in questions:
        name = field_name(question)
        if question.type == "multiple_response":
            responses[question.id] = form.getlist(name)
        elif question.type == "ordering":
            count = len((question.data or {}).get("items") or [])
            responses[question.id] = [form.get(field_name(question, n)) or None
                                      for n in range(1, count + 1)]
        elif question.type == "matching":
            pair_ids = orders.get(str(question.id)) or [
                str(p["id"]) for p in (question.data or {}).get("pairs") or []]
            responses[question.id] = {pid: form.get(field_name(question, pid)) or None
                                      for pid in pair_ids}
        else:
            value = form.get(name)
            responses[question.id] = value if value not in (None, "") else None
    return responses


def answered(response: Any) -> bool:
    """Whether a response from :func:`responses_from_form` answers its question at all: a
    value, a non-empty choice list, or at least one ordering position or matching pair
    filled (a partly filled one is an answer, graded as it is)."""
    if response is None:
        return False
    if isinstance(response, dict):
        return any(v not in (None, "") for v in response.values())
    if isinstance(response, list):
        return any(v not in (None, "") for v in response)
    return str(response).strip() != ""
