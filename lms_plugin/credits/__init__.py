"""Continuing-education credit (issue 15): activities, evaluations, claims, certificates,
transcripts, verification and registry exports. Layer 6, beside ``lti``."""

from __future__ import annotations

from typing import Any


def subscribe(app: Any) -> None:
    """Connect the CE receivers of the domain events for ``app`` (called by create_app).

    ``events.module_imported`` -> create or update the module's CE activity from its
    ``credit:`` block, in the import's transaction (``services.activity_from_import``).
    """
    from lms_plugin import events
    from lms_plugin.credits import services

    events.module_imported.connect(services.activity_from_import, sender=app)
    # The module page names the CE activity before the learner starts (issue 15): learning
    # cannot import credits, so the page asks the shell's providers (layout.module_notices).
    app.extensions.setdefault("lms_plugin.module_notices", []).append(_module_notice)


def _module_notice(organisation_id: int, module_id: int, slug: str) -> dict[str, str] | None:
    """``{"text", "href", "link"}`` pointing at the activity's disclosure page, or None."""
    from flask import url_for

    from lms_plugin.credits import services

    if services.activity_for_module(organisation_id, module_id) is None:
        return None
    return {"text": "This module offers continuing-education credit: read the activity's "
                    "objectives, faculty disclosures and how to earn credit before you start.",
            "href": url_for("credits.disclosure", slug=slug),
            "link": "CE credit: disclosures and how to earn it"}
