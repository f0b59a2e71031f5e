"""Background work through a transactional outbox.

A job row is written in the caller's transaction (so it exists iff the data that caused it
was committed); the worker claims due rows with row locking and runs registered handlers.
Other packages add job kinds with ``@job_handler("kind")`` in their ``tasks.py`` module.

Modules: ``models`` (the outbox and schedule tables); ``registry`` (job kinds, handlers,
the outcomes a handler raises); ``outbox`` (settings, ``enqueue``, ``newer_job_exists``);
``runner`` (the committing edge: claim, run, record, on one "due job" rule); ``queries``
(list, count, retry, prune: the admin page and CLI); ``schedule`` (periodic jobs);
``worker`` (in-process loop or RQ); ``services`` re-exports the public names for callers.
"""

from __future__ import annotations

from typing import Any


def subscribe(app: Any) -> None:
    """Connect the outbox's receivers for ``app`` (called once by ``create_app``):
    ``mail.mail_queued`` -> a ``mail.send`` job in the caller's transaction
    (:func:`lms_plugin.jobs.mail_jobs.enqueue_mail`)."""
    from lms_plugin import mail
    from lms_plugin.jobs import mail_jobs

    mail.mail_queued.connect(mail_jobs.enqueue_mail, sender=app)
