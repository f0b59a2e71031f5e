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
