"""Mail through the outbox: the ``mail.send`` job kind (issue 12 item 7, issue 14).

:func:`lms_plugin.mail.queue` announces ``mail_queued``; :func:`enqueue_mail` (connected by
:func:`lms_plugin.jobs.subscribe`) writes the outbox row in the caller's transaction, and the
handler in ``jobs.tasks`` delivers it (:func:`send`) with the outbox's retries: a transient
failure (server down, timeout, 4xx) is retried with backoff until ``LMS_JOB_GIVE_UP_AFTER``;
a permanent one (5xx: the server refuses the address) ends the job ``rejected``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import update

from lms_plugin import mail as mail_module
from lms_plugin.extensions import db
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.jobs.outbox import enqueue_many
from lms_plugin.jobs.registry import JobContext, PermanentFailure, RetryLater

MAIL_KIND = "mail.send"
#: What replaces the body of a sensitive mail (a reset link) in the outbox row once sent.
REDACTED = "[removed after delivery]"


def enqueue_mail(sender: Any, *, mails: list[mail_module.Mail], organisation_id: int | None,
                 sensitive: bool) -> int:
    """Receiver of ``mail.mail_queued``: one outbox row of kind ``mail.send`` per mail, in
    one statement of the caller's transaction; how many."""
    return enqueue_many(MAIL_KIND, [{**m.as_payload(), "sensitive": bool(sensitive)}
                                    for m in mails], organisation_id=organisation_id)


def send(payload: dict[str, Any], ctx: JobContext) -> str:
    """Deliver one queued mail with the application's mail settings; where it went.

    The Message-ID is the job's (``<outbox-<id>@<MAIL_FROM domain>>``), the same on every
    retry. A sensitive mail's body is removed from the outbox row in the same transaction
    that records the delivery. Raises RetryLater / PermanentFailure (see the module doc).
    """
    if payload.get("text") == REDACTED:
        raise PermanentFailure("the message body was removed after an earlier delivery")
    settings = current_app.config
    sender = settings["MAIL_FROM"]
    domain = mail_module.parse_address(sender, "MAIL_FROM")[1].rpartition("@")[2]
    try:
        message = mail_module.build(mail_module.Mail.from_payload(payload), sender,
                                    message_id=f"<{ctx.idempotency_key}@{domain}>")
        where = mail_module.deliver(message, settings)
    except mail_module.MailError as exc:
        if exc.transient:
            raise RetryLater(exc.message) from None
        raise PermanentFailure(exc.message) from None
    if payload.get("sensitive"):
        db.session.execute(
            update(OutboxJob).where(OutboxJob.id == ctx.job_id)
            .values(payload={**payload, "text": REDACTED, "html": REDACTED}),
            execution_options={"synchronize_session": False})
    return where
