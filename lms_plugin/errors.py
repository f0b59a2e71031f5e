"""Domain exceptions and the error pages (HTML or RFC 9457 problem JSON) every 4xx/5xx gets."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A rule of the domain refused the request. Views let it propagate: it becomes a 4xx."""

    status_code = 400
    title = "Bad request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Forbidden(DomainError):
    status_code = 403
    title = "Not allowed"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class ValidationFailed(DomainError):
    status_code = 422
    title = "Invalid input"


FRIENDLY = {
    400: ("Bad request", "The request could not be understood. Please go back and try again."),
    401: ("Sign-in required", "Please sign in, or launch this tool again from your LMS course."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Method not allowed", "This page cannot be used that way."),
    409: ("Conflict", "This change conflicts with the current state; reload and try again."),
    413: ("Too large", "The upload is larger than allowed."),
    422: ("Invalid input", "Some of the information given is not valid."),
    429: ("Too many attempts", "Too many attempts in a short time. Please wait a minute."),
    500: ("Something went wrong", "An unexpected error occurred; it has been logged."),
}


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(
        ["text/html", "application/json", "application/problem+json"]
    )
    return best in {"application/json", "application/problem+json"}


def error_response(status: int, detail: str | None = None, title: str | None = None,
                   field: str | None = None):
    default_title, default_detail = FRIENDLY.get(status, ("Error", "The request failed."))
    title = title or default_title
    detail = detail or default_detail
    if wants_json():
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        if field:
            body["field"] = field
        response = jsonify(body)
        response.status_code = status
        response.mimetype = "application/problem+json"
        return response
    return render_template("error.html", status=status, title=title, detail=detail), status


NUL_REFUSED = ("The request contains a NUL character (%00), which no address, search or "
               "form field can hold.")


def _has_nul() -> bool:
    """True when the path, a query value or a form value holds a NUL character.

    PostgreSQL refuses NUL in text ("PostgreSQL text fields cannot contain NUL (0x00)
    bytes"), so such a value reaching a query would be a 500; it is refused up front instead.
    Uploaded files are not read here."""
    if "\x00" in request.path:
        return True
    values = list(request.args.items(multi=True))
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        values += list(request.form.items(multi=True))
    return any("\x00" in key or "\x00" in value for key, value in values)


def register_error_handlers(app: Flask) -> None:
    @app.before_request
    def _refuse_nul():
        if _has_nul():
            return error_response(400, NUL_REFUSED)
        return None

    @app.errorhandler(DomainError)
    def _domain(error: DomainError):
        return error_response(error.status_code, error.message, error.title, error.field)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        status = error.code or 500
        # Werkzeug's default descriptions are technical; keep ours unless a view gave one.
        custom = error.description if error.description != type(error).description else None
        response = make_response(error_response(status, custom))
        valid_methods = getattr(error, "valid_methods", None)
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        from lms_plugin.extensions import db

        db.session.rollback()
        return error_response(500)
