"""Outgoing email: build a message (plain text + HTML alternative) and deliver it.

A base module: it imports no package. Nothing here is called inside a request to reach a
mail server. A service calls :func:`queue`, which announces :data:`mail_queued` in the
caller's transaction; the ``jobs`` package (``jobs.tasks``) turns that into an outbox row of
kind ``mail.send``, and a worker delivers it later with :func:`deliver` (with the outbox's
retries and backoff). A mail is therefore sent iff the caller's transaction commits.

Backends (``MAIL_BACKEND``, parsed in :mod:`lms_plugin.config`):

- ``file`` (the default): each message is written as one ``.eml`` file (RFC 5322, the
  format mail clients open) under ``MAIL_FILE_DIR`` (default ``instance/mail``), so nothing
  leaves a developer's machine.
- ``smtp``: ``MAIL_SERVER``:``MAIL_PORT``, STARTTLS when ``MAIL_USE_TLS`` (RFC 3207),
  ``AUTH`` with ``MAIL_USERNAME``/``MAIL_PASSWORD`` when set (only after STARTTLS when TLS
  is on), sender ``MAIL_FROM``. The whole conversation has one deadline,
  ``MAIL_TIMEOUT``: each socket operation gets what is left of it.

Errors: :class:`MailError`. ``transient`` is True for what a retry may cure (the server
unreachable, a timeout, a 4xx reply: RFC 5321 section 4.2.1 "transient negative
completion") and False for a 5xx reply ("permanent negative completion"), such as an
address the server refuses.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

from blinker import Namespace
from flask import current_app

_signals = Namespace()

mail_queued = _signals.signal("mail-queued", doc="""\
A service wants a mail sent once its transaction commits.

Keyword arguments: ``mails`` (a list of :class:`Mail`), ``organisation_id`` (int or None),
``sensitive`` (bool: the bodies hold a secret such as a reset link, removed from the outbox
rows once delivered). Connected per application by ``jobs.subscribe``; the receiver adds one
outbox row per mail (one statement) and flushes, never commits.
""")


class MailError(Exception):
    """Building or delivering a message failed; ``transient``: a retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class Mail:
    """One message to one person: ``to`` an address (``nurse@example.org``), ``subject``
    one line, ``text`` the plain-text body and ``html`` the same content as an HTML fragment
    or document (the alternative part; clients that show HTML prefer it, RFC 2046 5.1.4)."""

    to: str
    subject: str
    text: str
    html: str

    def as_payload(self) -> dict[str, str]:
        return {"to": self.to, "subject": self.subject, "text": self.text, "html": self.html}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Mail:
        return cls(str(payload["to"]), str(payload["subject"]), str(payload["text"]),
                   str(payload["html"]))


_ADDRESS_RE = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")


def parse_address(value: str, name: str = "address") -> tuple[str, str]:
    """``"Training <no-reply@hospital.org>"`` or ``"no-reply@hospital.org"`` as
    (display name, address). Raises ValueError naming ``name`` when it is not exactly one
    address of the form local@domain.tld (no header injection: no line breaks)."""
    text = (value or "").strip()
    if not text or "\n" in text or "\r" in text:
        raise ValueError(f"{name}: {value!r} is not an email address")
    if _ADDRESS_RE.match(text):  # a bare address (most): no header parsing needed
        return "", text
    pairs = getaddresses([text])
    if len(pairs) != 1 or not _ADDRESS_RE.match(pairs[0][1]):
        raise ValueError(f"{name}: {value!r} is not one email address like "
                         "Training <no-reply@hospital.org>")
    return pairs[0][0], pairs[0][1]


def _address(value: str, name: str) -> Address:
    display, addr = parse_address(value, name)
    local, _, domain = addr.rpartition("@")
    return Address(display_name=display, username=local, domain=domain)


def build(mail: Mail, sender: str, *, message_id: str | None = None) -> EmailMessage:
    """The RFC 5322 message of ``mail`` from ``sender`` (``MAIL_FROM``): a
    ``multipart/alternative`` with the plain text first and the HTML last (RFC 2046 5.1.4:
    the last part is the preferred one). ``message_id`` (``<id@domain>``) lets a retry of
    the same outbox job carry the same Message-ID, so a receiver can drop a duplicate.

    Raises MailError (not transient) for an address that is not one address or a subject
    with a line break.
    """
    try:
        frm = _address(sender, "MAIL_FROM")
        to = _address(mail.to, "recipient")
    except ValueError as exc:
        raise MailError(str(exc), transient=False) from None
    subject = " ".join(mail.subject.split())
    message = EmailMessage()
    message["From"] = frm
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id or make_msgid(domain=frm.domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def deliver(message: EmailMessage, settings: Mapping[str, Any]) -> str:
    """Deliver ``message`` with the backend of ``settings`` (the app config); where it went
    (a file path, or ``smtp://host:port``). Raises MailError (``transient`` as above)."""
    if settings.get("MAIL_BACKEND", "file") == "smtp":
        return _deliver_smtp(message, settings)
    return _deliver_file(message, Path(settings["MAIL_FILE_DIR"]))


def _deliver_file(message: EmailMessage, folder: Path) -> str:
    """Write ``message`` as ``<UTC time>-<random>.eml``: atomically (a reader never sees a
    half-written file) and never overwriting another message."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = folder / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        partial = path.with_suffix(".part")
        partial.write_bytes(message.as_bytes())
        partial.replace(path)
    except OSError as exc:
        raise MailError(f"cannot write the message under {folder}: {exc.strerror or exc}",
                        transient=True) from None
    return str(path)


class _Deadline:
    """What is left of one total time budget; applied to the socket before each step."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise MailError(f"the mail server did not finish within {self.seconds:g}s "
                            "(MAIL_TIMEOUT)", transient=True)
        return remaining

    def apply(self, smtp: smtplib.SMTP) -> None:
        left = self.left()
        if smtp.sock is not None:
            smtp.sock.settimeout(left)


def _deliver_smtp(message: EmailMessage, settings: Mapping[str, Any]) -> str:
    host, port = settings["MAIL_SERVER"], int(settings["MAIL_PORT"])
    where = f"smtp://{host}:{port}"
    deadline = _Deadline(float(settings.get("MAIL_TIMEOUT") or 30.0))
    try:
        with smtplib.SMTP(host, port, timeout=deadline.left()) as smtp:
            deadline.apply(smtp)
            smtp.ehlo()
            if settings.get("MAIL_USE_TLS"):
                deadline.apply(smtp)
                smtp.starttls(context=ssl.create_default_context())
                deadline.apply(smtp)
                smtp.ehlo()
            if settings.get("MAIL_USERNAME"):
                deadline.apply(smtp)
                smtp.login(settings["MAIL_USERNAME"], settings.get("MAIL_PASSWORD") or "")
            deadline.apply(smtp)
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        transient = all(400 <= code < 500 for code in codes)
        raise MailError(f"{where} refused the recipient: {_reply(exc.recipients)}",
                        transient=transient) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        raise MailError(f"{where} answered {exc.smtp_code} {text}",
                        transient=not 500 <= exc.smtp_code < 600) from None
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        # Unreachable, reset, TLS failure, timeout, a server without STARTTLS: try later.
        raise MailError(f"{where}: {type(exc).__name__}: {exc}", transient=True) from None
    if refused:  # some recipients refused, others accepted: there is only one recipient
        raise MailError(f"{where} refused the recipient: {_reply(refused)}", transient=False)
    return where


def _reply(recipients: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{addr}: {code} {msg.decode('utf-8', 'replace')}"
                     for addr, (code, msg) in recipients.items())


def queue(mail: Mail, *, organisation_id: int | None = None, sensitive: bool = False) -> None:
    """Ask for ``mail`` to be delivered after the caller's transaction commits (an outbox
    row of kind ``mail.send``, added and flushed by the ``jobs`` receiver; never sent from
    inside the request). ``sensitive``: the body holds a secret (a reset link); the outbox
    row keeps only the recipient and subject once delivered.

    Raises MailError (not transient) for a recipient that is not one address, and
    RuntimeError when the application has no receiver (a mail must never be dropped
    silently). Needs an application context.
    """
    queue_many([mail], organisation_id=organisation_id, sensitive=sensitive)


def queue_many(mails: list[Mail], *, organisation_id: int | None = None,
               sensitive: bool = False) -> None:
    """:func:`queue` for many mails at once (one outbox statement: a reminder run's mails).
    Every recipient is checked first: one bad address queues nothing (MailError)."""
    for item in mails:
        try:
            parse_address(item.to, "recipient")
        except ValueError as exc:
            raise MailError(str(exc), transient=False) from None
    if not mails:
        return
    app = current_app._get_current_object()
    answered = mail_queued.send(app, mails=list(mails), organisation_id=organisation_id,
                                sensitive=sensitive)
    if not answered:
        raise RuntimeError("no receiver for mail_queued: create_app connects jobs.subscribe")
