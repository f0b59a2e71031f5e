"""The demo LMS under test: an app with ``LMS_DEMO`` on, served over real HTTP on loopback
(the tool fetches the demo's key set and calls its token, AGS and NRPS endpoints through
``lms_plugin.outbound``, exactly as it calls Moodle), and a quiz answered correctly."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from lms_plugin import create_app
from lms_plugin.catalog.models import Question


def demo_app(app: Flask, **overrides: Any) -> Flask:
    """A second app on the test database with the demo on (the session ``app`` has it off)."""
    config = {key: app.config[key] for key in (
        "TESTING", "LMS_ENV", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "WTF_CSRF_ENABLED",
        "RATELIMIT_STORAGE_URI", "RATELIMIT_KEY_PREFIX", "SERVER_NAME")}
    config.update(LMS_DEMO=True, LMS_BASE_URL="http://tool.test",
                  LTI_REGISTRATION_CACHE_SECONDS=0.0)
    config.update(overrides)
    return create_app(config)


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and make that its ``LMS_BASE_URL``; yields the URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_port}"
    app.config["LMS_BASE_URL"] = url
    try:
        yield url
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def local(url: str) -> str:
    """The path and query of an absolute URL (the test client speaks to the app itself)."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def hidden_inputs(html: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def form_action(html: str, form_id: str) -> str:
    match = re.search(rf'<form id="{form_id}" method="post" action="([^"]+)"', html)
    assert match, html
    return unescape(match.group(1))


def launch(client, person: str, link: int | None = None) -> Any:
    """Course page → tool's /lti/login → demo auth → form post to /lti/launch (as the
    browser does); returns the tool's answer to the launch."""
    query = f"?person={person}" + (f"&link={link}" if link is not None else "")
    to_login = client.get("/demo/launch" + query)
    assert to_login.status_code == 302, to_login.get_data(as_text=True)
    to_auth = client.get(local(to_login.headers["Location"]))
    assert to_auth.status_code == 302, to_auth.get_data(as_text=True)
    assert urlsplit(to_auth.headers["Location"]).path == "/demo/auth"
    page = client.get(local(to_auth.headers["Location"]))
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert local(form_action(html, "demo-autopost")) == "/lti/launch"
    return client.post("/lti/launch", data=hidden_inputs(html))


def correct_response(question: Question) -> Any:
    """A full-credit answer from a question's stored ``data`` (the content format shapes)."""
    data = question.data
    if question.type == "matching":
        return {pair["id"]: pair["match"] for pair in data["pairs"]}
    if question.type == "numeric":
        return str(data["answer"])
    if question.type == "short_text":
        return data["accepted"][0]
    return data["answer"]


def correct_responses(db_session, attempt) -> dict[int, Any]:
    """Full-credit answers to the questions drawn for ``attempt``."""
    questions = db_session.scalars(select(Question).where(
        Question.id.in_(attempt.question_ids)))
    return {q.id: correct_response(q) for q in questions}
