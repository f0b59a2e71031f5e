"""Builds catalog rows directly (the content format's ``data`` shapes) for quiz/learning tests."""

from __future__ import annotations

from typing import Any

from flask import Flask

from lms_plugin.accounts import services as accounts
from lms_plugin.catalog.models import ClinicalSystem, Lesson, Module, ModuleVersion, Question
from lms_plugin.extensions import db

# One question of every item type, in the YAML shapes (key, type, prompt, explanation, data).
QUESTIONS: list[dict[str, Any]] = [
    {"key": "verify-patient", "type": "single_choice",
     "prompt": "Before signing an order, what must you confirm first?",
     "explanation": "Two identifiers prevent wrong-patient orders.",
     "data": {"options": [
         {"id": "a", "text": "The patient's identity with two identifiers",
          "feedback": "Correct: two identifiers."},
         {"id": "b", "text": "The bed number", "feedback": "Bed numbers change."},
         {"id": "c", "text": "The attending's pager"}], "answer": "a"}},
    {"key": "high-alert", "type": "multiple_response",
     "prompt": "Select every high-alert medication.",
     "data": {"options": [{"id": "a", "text": "Insulin"}, {"id": "b", "text": "Heparin"},
                          {"id": "c", "text": "Acetaminophen"}],
              "answer": ["a", "b"], "scoring": "partial"}},
    {"key": "read-back", "type": "true_false", "prompt": "Verbal orders must be read back.",
     "data": {"answer": True, "feedback": {"true": "Yes: always.", "false": "They must."}}},
    {"key": "downtime-order", "type": "ordering", "prompt": "Put the steps in order.",
     "data": {"items": [{"id": "a", "text": "Use the paper form"},
                        {"id": "b", "text": "Confirm the downtime"},
                        {"id": "c", "text": "Back-enter after recovery"}],
              "answer": ["b", "a", "c"]}},
    {"key": "match-alerts", "type": "matching", "prompt": "Match each alert to its response.",
     "data": {"pairs": [
         {"id": "p1", "prompt": "Drug-drug interaction",
          "match": "Review and document override reason"},
         {"id": "p2", "prompt": "Duplicate therapy", "match": "Discontinue one order"}],
         "distractors": ["Ignore the alert"]}},
    {"key": "heparin-rate", "type": "numeric",
     "prompt": "Heparin 25,000 units in 250 mL; order 1,000 units/hour. Rate in mL/hour?",
     "data": {"answer": 10, "tolerance": 0.1, "tolerance_type": "absolute",
              "units": "mL/hour"}},
    {"key": "name-the-form", "type": "short_text",
     "prompt": "Which paper form is used for medication orders during downtime?",
     "data": {"accepted": ["downtime medication order form", "paper MAR"]}},
]

# A response that earns full credit for each question above, keyed by question key.
CORRECT: dict[str, Any] = {
    "verify-patient": "a",
    "high-alert": ["a", "b"],
    "read-back": True,
    "downtime-order": ["b", "a", "c"],
    "match-alerts": {"p1": "Review and document override reason",
                     "p2": "Discontinue one order"},
    "heparin-rate": "10",
    "name-the-form": "  Paper   mar ",
}

LESSONS = [
    ("why-it-matters", "Why safe ordering matters",
     "# Why safe ordering matters\n\nWrong-patient orders harm people.\n\n"
     "![Order screen](images/order.png)\n\n<script>alert('x')</script>\n"),
    ("placing-an-order", "Placing an order",
     "# Placing an order\n\nUse **two identifiers**, then sign.\n"),
]


def build_module(app: Flask, *, org: str = "General Hospital", slug: str = "cpoe-basics",
                 status: str = "published", questions: list[dict[str, Any]] | None = None,
                 lessons: list[tuple[str, str, str]] | None = None,
                 **settings: Any) -> dict[str, Any]:
    """Commit a system, module, one version with lessons and questions; return their ids."""
    with app.app_context():
        organisation = accounts.get_or_create_organisation(org)
        system = ClinicalSystem(organisation_id=organisation.id, slug=f"ehr-{slug}",
                                name="Electronic health record")
        db.session.add(system)
        db.session.flush()
        module = Module(organisation_id=organisation.id, system_id=system.id, slug=slug)
        db.session.add(module)
        db.session.flush()
        values = {"pass_mark": 80, "attempt_limit": None, "time_limit_minutes": None,
                  "draw_count": None, "shuffle_questions": False, "shuffle_options": False,
                  "validity_months": 12, "estimated_minutes": 20}
        values.update(settings)
        version = ModuleVersion(
            module_id=module.id, number=1, status=status, content_hash="0" * 64,
            title="EHR order entry (CPOE): safe ordering basics",
            summary="Place safe medication orders.",
            objectives=["Place a medication order with the correct dose"],
            audience=["nurse"], **values)
        db.session.add(version)
        db.session.flush()
        for position, (lesson_slug, title, body) in enumerate(lessons or LESSONS, start=1):
            db.session.add(Lesson(version_id=version.id, position=position, slug=lesson_slug,
                                  title=title, body_markdown=body))
        keys = {}
        for position, spec in enumerate(questions if questions is not None else QUESTIONS,
                                        start=1):
            question = Question(version_id=version.id, key=spec["key"], position=position,
                                type=spec["type"], prompt=spec["prompt"],
                                explanation=spec.get("explanation", ""), data=spec["data"])
            db.session.add(question)
            db.session.flush()
            keys[spec["key"]] = question.id
        db.session.commit()
        return {"organisation_id": organisation.id, "module_id": module.id,
                "version_id": version.id, "slug": slug, "questions": keys}


def add_version(app: Flask, module_id: int, *, number: int, status: str = "published",
                retraining_required: bool = False, **settings: Any) -> int:
    """A further version of a module with one single-choice question."""
    with app.app_context():
        version = ModuleVersion(module_id=module_id, number=number, status=status,
                                content_hash=f"{number}" * 64, title=f"Version {number}",
                                retraining_required=retraining_required, **settings)
        db.session.add(version)
        db.session.flush()
        spec = QUESTIONS[0]
        db.session.add(Question(version_id=version.id, key=spec["key"], position=1,
                                type=spec["type"], prompt=spec["prompt"], data=spec["data"]))
        db.session.commit()
        return version.id
