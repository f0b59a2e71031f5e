"""Authoring forms (Flask-WTF, CSRF on every one).

The forms only parse what was typed (numbers, lists, "id | text" lines) into the content
format's dataclasses; every rule about the values (ranges, answer keys, ids…) is the content
validator's (``catalog.authoring.validate_spec``), whose messages are put back on the fields
by :func:`attach_problems`.
"""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp

from lms_plugin.catalog.content_format import LessonSpec, ModuleSpec, Problem, QuestionSpec
from lms_plugin.catalog.models import ITEM_TYPES


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _number(text: str | None) -> Any:
    """A typed number as int/float; the text itself when it is none (the validator names
    it); None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() \
        else value


LOCK_RE = r"^\d+$"


class LockedForm(FlaskForm):
    """A form that edits a draft: ``lock`` is the draft's lock_version when it was read."""

    lock = HiddenField(validators=[InputRequired("This form is missing its edit counter; "
                                                 "reload the page."),
                                   Regexp(LOCK_RE, message="Reload the page.")])

    @property
    def lock_value(self) -> int:
        return int(self.lock.data)


class NewModuleForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=300)], filters=[_strip])
    slug = StringField("Short name (used in links)", validators=[DataRequired(),
                                                                  Length(max=64)],
                       filters=[_strip])
    system_id = SelectField("Clinical system", coerce=int, validate_choice=False)


class OpenDraftForm(FlaskForm):
    from_number = HiddenField(validators=[InputRequired(), Regexp(LOCK_RE)])


class MetadataForm(LockedForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=300)], filters=[_strip])
    summary = TextAreaField("Summary", filters=[_strip])
    objectives = TextAreaField("Objectives (one per line)")
    audience = TextAreaField("Audience job roles (one per line)")
    estimated_minutes = StringField("Estimated minutes", filters=[_strip])
    validity_months = StringField("Valid for (months; empty: never expires)", filters=[_strip])
    pass_mark = StringField("Pass mark (%)", filters=[_strip])
    attempt_limit = StringField("Attempt limit (empty: unlimited)", filters=[_strip])
    time_limit_minutes = StringField("Time limit in minutes (empty: none)", filters=[_strip])
    draw_count = StringField("Questions drawn per attempt (empty: all)", filters=[_strip])
    shuffle_questions = BooleanField("Shuffle questions")
    shuffle_options = BooleanField("Shuffle options")

    FIELDS = ("title", "summary", "objectives", "audience", "estimated_minutes",
              "validity_months", "pass_mark", "attempt_limit", "time_limit_minutes",
              "draw_count", "shuffle_questions", "shuffle_options")

    def fill(self, spec: ModuleSpec) -> None:
        for name in self.FIELDS:
            value = getattr(spec, name)
            if isinstance(value, list):
                value = "\n".join(value)
            elif value is None:
                value = ""
            elif not isinstance(value, bool):
                value = str(value)
            getattr(self, name).data = value

    def apply(self, spec: ModuleSpec) -> None:
        spec.title, spec.summary = self.title.data, self.summary.data or ""
        spec.objectives, spec.audience = _lines(self.objectives.data), \
            _lines(self.audience.data)
        spec.estimated_minutes = _number(self.estimated_minutes.data)
        for name in ("validity_months", "pass_mark", "attempt_limit", "time_limit_minutes",
                     "draw_count"):
            setattr(spec, name, _number(getattr(self, name).data))
        if spec.pass_mark is None:
            spec.pass_mark = 80
        spec.shuffle_questions = bool(self.shuffle_questions.data)
        spec.shuffle_options = bool(self.shuffle_options.data)


class LessonForm(LockedForm):
    body = TextAreaField("Lesson text (Markdown; the first '# ' line is the title)",
                         validators=[DataRequired()])
    slug = StringField("Short name (empty: from the title)", filters=[_strip],
                       validators=[Optional(), Length(max=100),
                                   Regexp(r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                                          message="Use lowercase letters, digits and "
                                                  "hyphens only.")])

    def to_spec(self, position: int) -> LessonSpec:
        body = self.body.data.replace("\r\n", "\n")
        if not body.endswith("\n"):
            body += "\n"
        title = next((m.group(1) for line in body.splitlines()
                      if (m := re.match(r"^#\s+(\S.*?)\s*#*\s*$", line))), "")
        slug = self.slug.data or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:100]
        return LessonSpec(position=position, slug=slug or "lesson", title=title,
                          body_markdown=body)


class ImageForm(FlaskForm):
    image = FileField("Image (PNG, JPEG, GIF, WebP or SVG; at most 5 MB)",
                      validators=[FileRequired("Choose an image file.")])
    alt = StringField("Describe the image (alt text)", filters=[_strip],
                      validators=[DataRequired("Describe the image for people who cannot "
                                               "see it."), Length(max=200)])


class QuestionForm(LockedForm):
    key = StringField("Question id (stable across versions)", filters=[_strip],
                      validators=[DataRequired(), Length(max=64)])
    type = SelectField("Type", choices=[(t, t.replace("_", " ")) for t in ITEM_TYPES],
                       validate_choice=False)
    prompt = TextAreaField("Prompt", validators=[DataRequired()], filters=[_strip])
    points = StringField("Points", filters=[_strip])
    options = TextAreaField("Options, one per line: id | text | feedback (optional)")
    items = TextAreaField("Items, one per line: id | text")
    pairs = TextAreaField("Pairs, one per line: id | prompt | match")
    distractors = TextAreaField("Extra wrong matches (one per line)")
    answer = StringField("Answer key", filters=[_strip])
    scoring = SelectField("Scoring", choices=[("", "default"), ("partial", "partial credit"),
                                              ("all_or_nothing", "all or nothing")],
                          validate_choice=False)
    tolerance = StringField("Tolerance", filters=[_strip])
    tolerance_type = SelectField("Tolerance is", choices=[("absolute", "absolute"),
                                                          ("percent", "percent")],
                                 validate_choice=False)
    units = StringField("Units", filters=[_strip])
    accepted = TextAreaField("Accepted answers (one per line)")
    feedback_true = StringField("Feedback when 'true' is chosen", filters=[_strip])
    feedback_false = StringField("Feedback when 'false' is chosen", filters=[_strip])
    explanation = TextAreaField("Explanation (shown after grading)", filters=[_strip])

    def fill(self, q: QuestionSpec) -> None:
        d = q.data
        self.key.data, self.type.data, self.prompt.data = q.key, q.type, q.prompt
        self.explanation.data = q.explanation
        self.points.data = str(d.get("points", 1))
        self.options.data = "\n".join(
            " | ".join([o["id"], o["text"]] + ([o["feedback"]] if o.get("feedback") else []))
            for o in d.get("options") or [])
        self.items.data = "\n".join(f"{i['id']} | {i['text']}" for i in d.get("items") or [])
        self.pairs.data = "\n".join(f"{p['id']} | {p['prompt']} | {p['match']}"
                                    for p in d.get("pairs") or [])
        self.distractors.data = "\n".join(d.get("distractors") or [])
        answer = d.get("answer")
        if isinstance(answer, bool):
            answer = "true" if answer else "false"
        elif isinstance(answer, list):
            answer = ", ".join(answer)
        self.answer.data = "" if answer is None else str(answer)
        self.scoring.data = d.get("scoring", "")
        self.tolerance.data = "" if d.get("tolerance") is None else str(d["tolerance"])
        self.tolerance_type.data = d.get("tolerance_type", "absolute")
        self.units.data = d.get("units", "")
        self.accepted.data = "\n".join(d.get("accepted") or [])
        feedback = d.get("feedback") or {}
        self.feedback_true.data = feedback.get("true", "")
        self.feedback_false.data = feedback.get("false", "")

    @staticmethod
    def _entries(text: str | None, names: tuple[str, ...]) -> list[dict[str, str]]:
        """"id | a | b" lines as dicts; a line without "|" gets the id a, b, c…"""
        result = []
        for index, line in enumerate(_lines(text)):
            parts = [p.strip() for p in line.split("|", len(names))]
            if len(parts) == 1:
                parts = [chr(ord("a") + index) if index < 26 else str(index + 1), parts[0]]
            entry = {"id": parts[0]}
            for name, value in zip(names, parts[1:], strict=False):
                if value:
                    entry[name] = value
            result.append(entry)
        return result

    def to_spec(self) -> QuestionSpec:
        qtype = self.type.data
        data: dict[str, Any] = {}
        answer = self.answer.data or ""
        ids = [a.strip() for a in answer.split(",") if a.strip()]
        if qtype in ("single_choice", "multiple_response"):
            data["options"] = self._entries(self.options.data, ("text", "feedback"))
            data["answer"] = answer if qtype == "single_choice" else ids
            if qtype == "multiple_response":
                data["scoring"] = self.scoring.data or "partial"
        elif qtype == "true_false":
            lowered = answer.lower()
            data["answer"] = {"true": True, "false": False}.get(lowered, answer or None)
            feedback = {k: v for k, v in (("true", self.feedback_true.data),
                                          ("false", self.feedback_false.data)) if v}
            if feedback:
                data["feedback"] = feedback
        elif qtype == "ordering":
            data["items"] = self._entries(self.items.data, ("text",))
            data["answer"] = ids
            data["scoring"] = self.scoring.data or "all_or_nothing"
        elif qtype == "matching":
            data["pairs"] = self._entries(self.pairs.data, ("prompt", "match"))
            if _lines(self.distractors.data):
                data["distractors"] = _lines(self.distractors.data)
        elif qtype == "numeric":
            data["answer"] = _number(answer)
            data["tolerance"] = _number(self.tolerance.data) or 0
            data["tolerance_type"] = self.tolerance_type.data or "absolute"
            if self.units.data:
                data["units"] = self.units.data
        else:
            data["accepted"] = _lines(self.accepted.data)
        points = _number(self.points.data)
        data["points"] = 1 if points is None else points
        return QuestionSpec(key=self.key.data, type=qtype, prompt=self.prompt.data,
                            explanation=self.explanation.data or "", data=data)


class PublishForm(LockedForm):
    change_notes = TextAreaField("What changed (shown to trainers and learners)",
                                 filters=[_strip])
    retraining_required = BooleanField("Everyone must retrain on this version")
    go_live_at = DateTimeLocalField("Go live at (UTC; empty: now)", format="%Y-%m-%dT%H:%M",
                                    validators=[Optional()])


class RetireForm(FlaskForm):
    reason = TextAreaField("Why is the module retired?", filters=[_strip])


class PlainForm(FlaskForm):
    """Only the CSRF token (restore)."""


class MoveForm(LockedForm):
    direction = HiddenField(validators=[InputRequired(), Regexp("^(up|down)$")])


class SystemForm(FlaskForm):
    slug = StringField("Short name (used in content files)", filters=[_strip],
                       validators=[Optional(), Length(max=64)])
    name = StringField("Name", filters=[_strip], validators=[Length(max=200)])
    vendor = StringField("Vendor", filters=[_strip], validators=[Length(max=200)])
    description = TextAreaField("Description", filters=[_strip])


class ZipImportForm(FlaskForm):
    archive = FileField("Content folder as .zip (systems/ and modules/)",
                        validators=[FileRequired("Choose a .zip file.")])


class BankForm(LockedForm):
    bank = FileField("GIFT (.gift, .txt) or Moodle XML (.xml) file",
                     validators=[FileRequired("Choose a question bank file.")])


# Validator key names (quoted in its messages) → form fields.
METADATA_FIELDS = {name: name for name in MetadataForm.FIELDS} | {"draw": "draw_count"}
QUESTION_FIELDS = {"id": "key", "prompt": "prompt", "points": "points", "options": "options",
                   "items": "items", "pairs": "pairs", "distractors": "distractors",
                   "answer": "answer", "scoring": "scoring", "tolerance": "tolerance",
                   "tolerance_type": "tolerance_type", "units": "units",
                   "accepted": "accepted", "feedback": "feedback_true",
                   "explanation": "explanation", "type": "type", "text": "options",
                   "match": "pairs"}


def attach_problems(form: FlaskForm, problems: list[Problem], fields: dict[str, str],
                    default: str) -> None:
    """Put each validator message on the field it names (its first quoted key), else on
    ``default``."""
    for problem in problems:
        message = problem.message
        target = default
        for word in [*re.findall(r"'([a-z_]+)'", message), message.split(" ", 1)[0]]:
            if word in fields:
                target = fields[word]
                break
        if "short_text question needs" in message:
            target = "accepted"
        if "question type" in message:
            target = "type"
        if "question id" in message:
            target = "key"
        if "lesson" in message and "name" in message and hasattr(form, "slug"):
            target = "slug"
        getattr(form, target).errors = [*getattr(form, target).errors, message]
