"""A real SMTP server on loopback for the mail tests (aiosmtpd), and ways to read what
arrived: each message parsed with the stdlib's ``email`` package."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Inbox:
    """What the server received: (envelope recipients, parsed message) per delivery.

    ``refuse_rcpt``: a reply such as ``"550 5.1.1 No such user"`` or ``"451 4.3.0 Later"``
    given to every RCPT TO instead of accepting it."""

    port: int = 0
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse_rcpt: str | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return [message for _, message in self.received]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(**server_options) -> Iterator[Inbox]:
    """An aiosmtpd server on a free loopback port; ``server_options`` go to aiosmtpd's
    ``SMTP`` (``authenticator=…``, ``auth_require_tls=False``, ``auth_required=True``)."""
    inbox = Inbox(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **server_options)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, HTML) of a multipart/alternative message."""
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP listener that accepts and never says a word (no SMTP greeting): a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(5)
        yield sock.getsockname()[1]


@contextmanager
def smtp_backend(app) -> Iterator[Inbox]:
    """``app`` delivers by SMTP to a loopback server while the block runs (the session's app
    is shared: its mail settings are put back afterwards)."""
    with smtp_server() as server:
        saved = {k: app.config[k] for k in ("MAIL_BACKEND", "MAIL_SERVER", "MAIL_PORT")}
        app.config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port)
        try:
            yield server
        finally:
            app.config.update(saved)
