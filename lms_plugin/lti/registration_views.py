"""Routes an LMS calls to register the tool: Canvas JSON configuration, Dynamic Registration.

Both are PUBLIC by design: Canvas fetches the JSON server-side without any session, and the
Dynamic Registration page is opened by the LMS administrator inside the LMS, where the
platform's ``registration_token`` is the credential (see
:func:`lms_plugin.lti.registration.register_dynamically` for why that is safe).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, render_template, request
from flask_login import current_user

from lms_plugin.authz import PUBLIC, allow
from lms_plugin.errors import DomainError, error_response, wants_json
from lms_plugin.extensions import db, limiter
from lms_plugin.lti import registration

bp = Blueprint("lti_registration", __name__, template_folder="templates")

#: Credentials that may appear in a query string: the DR token, and (never sent that way by
#: a correct platform, but then still not logged) bearer tokens and id_tokens.
SECRET_PARAMETERS = ("registration_token", "id_token", "access_token", "client_assertion")
_TOKEN_IN_URL = re.compile("((?:" + "|".join(SECRET_PARAMETERS) + r")(?:=|%3D))[^&\s\"']+",
                           re.IGNORECASE)
#: Loggers that write request lines (query strings, referrers) to the access log.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


def redact(text: str) -> str:
    """``registration_token=<secret>`` → ``registration_token=[redacted]`` (and the other
    :data:`SECRET_PARAMETERS`)."""
    return _TOKEN_IN_URL.sub(r"\1[redacted]", text)


class RedactRegistrationToken(logging.Filter):
    """Keeps the platform's registration token out of access logs (issue 10.2).

    The LMS opens ``/lti/register?…&registration_token=…``: werkzeug's and gunicorn's access
    logs write the request line (and gunicorn the referrer of the page's script request)
    with the query string. The token is a bearer credential for the platform's
    registration endpoint, so it is replaced in the message and in every string argument
    (werkzeug passes a tuple, gunicorn a dict of atoms).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token" in record.msg.lower():
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, dict):
            for key, value in list(args.items()):
                if isinstance(value, str):
                    args[key] = redact(value)
        elif isinstance(args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


def install_log_redaction() -> None:
    """Add the filter to the access loggers once per process (idempotent)."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactRegistrationToken) for f in logger.filters):
            logger.addFilter(RedactRegistrationToken())


bp.record_once(lambda state: install_log_redaction())


@bp.route("/lti/config/canvas.json")
@allow(PUBLIC)
def canvas_config():
    """Canvas developer key → LTI Key → Method "Enter URL" points here."""
    response = jsonify(registration.canvas_config(current_app.config["LMS_BASE_URL"]))
    response.headers["Cache-Control"] = "no-cache"
    return response


def _is_admin() -> bool:
    return bool(current_user.is_authenticated and current_user.has_role("admin"))


@bp.route("/lti/register", methods=["GET", "POST"])
@allow(PUBLIC)
# Each call makes the server fetch a URL it was given: cap it per address so the route cannot
# be used to scan other hosts at volume (a real LMS admin registers a handful of times).
@limiter.limit("10/minute;60/hour")
def dynamic_registration():
    """LTI Dynamic Registration: the LMS opens this in an iframe with two query parameters.

    Without a signed-in admin, the GET itself registers (the LMS iframe has no session of
    ours to post a form with; the platform's single-use token guards it) and the result is
    stored disabled, pending approval. A signed-in admin's registration is enabled in their
    organisation, so it uses their session's authority: it takes a CSRF-protected POST from
    a confirmation page, never a bare GET a foreign page could embed.
    """
    values = request.form if request.method == "POST" else request.args
    openid_configuration = values.get("openid_configuration")
    registration_token = values.get("registration_token") or None
    if request.method == "GET" and not openid_configuration and not registration_token:
        # Opened directly (a bookmark, a pasted link): say what the address is for.
        if wants_json():
            return error_response(400, "openid_configuration is missing: this is the LTI "
                                       "Dynamic Registration address, which an LMS opens "
                                       "with its own parameters", field="openid_configuration")
        return render_template("lti/register_about.html",
                               base_url=current_app.config["LMS_BASE_URL"]), 400
    if request.method == "GET" and _is_admin():
        if not (openid_configuration or "").strip():
            return _failed(registration.RegistrationFailed(
                "openid_configuration is missing", field="openid_configuration"))
        # Read the configuration before calling anything "the LMS" (issue 12.10): the page
        # names the platform by its own issuer and product, or says why it cannot. Nothing
        # is written; the registration itself happens on the confirmed POST.
        try:
            config = registration.fetch_platform_configuration(
                openid_configuration, registration_token,
                allow_http_localhost=current_app.config["LMS_ENV"] != "production")
        except DomainError as exc:
            return _failed(exc)
        return render_template(
            "lti/register_confirm.html", openid_configuration=openid_configuration,
            registration_token=registration_token or "", config=config,
            platform_host=urlsplit(config.issuer).netloc or config.issuer,
        )
    try:
        outcome = registration.register_dynamically(
            openid_configuration, registration_token,
            base_url=current_app.config["LMS_BASE_URL"],
            actor=current_user if request.method == "POST" and _is_admin() else None,
            allow_http_localhost=current_app.config["LMS_ENV"] != "production",
        )
    except DomainError as exc:
        return _failed(exc)
    db.session.commit()
    return render_template("lti/register_done.html", outcome=outcome,
                           platform=outcome.platform, config=outcome.configuration)


def _failed(exc: DomainError):
    """The 4xx page naming the problem; the session is rolled back so nothing is written."""
    db.session.rollback()
    current_app.logger.info("dynamic registration refused: %s", exc.message)
    if wants_json():
        return error_response(exc.status_code, exc.message, exc.title, exc.field)
    # Manual registration is suggested only where it can succeed: the tool could not talk
    # to the LMS (not for a registration the tool refuses, which it would refuse too).
    return render_template("lti/register_failed.html", title=exc.title, detail=exc.message,
                           manual_hint=isinstance(exc, registration.RegistrationFailed)
                           ), exc.status_code
