"""LTI 1.3: registrations, tool keys, OIDC login and launch (pylti1p3 is used only in here).

The rest of the application sees plain launch data: ``flask.session["lti"]`` (a dict) and
the models in :mod:`lms_plugin.lti.models`.
"""

from __future__ import annotations

from typing import Any


def subscribe(app: Any) -> None:
    """Connect LTI's receivers of the domain events (:mod:`lms_plugin.events`) for ``app``.

    Called once by ``create_app``. ``events.attempt_graded`` -> queue the LMS gradebook
    update (``ags_jobs.enqueue_attempt_score``, an outbox row in the grading transaction).
    Receivers are connected with ``sender=app``: another application in the same process
    (tests, the RQ worker) has its own subscriptions.
    """
    from lms_plugin import events
    from lms_plugin.lti import ags_jobs

    events.attempt_graded.connect(ags_jobs.enqueue_attempt_score, sender=app)
