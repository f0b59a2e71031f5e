"""Lesson images served locally from ``ContentAsset`` (hospital networks block CDNs)."""

from __future__ import annotations

from flask import Blueprint, make_response, request
from flask_login import current_user
from markupsafe import Markup

from lms_plugin.authz import AUTHENTICATED, allow
from lms_plugin.catalog import services
from lms_plugin.markdown import render_prompt

bp = Blueprint("catalog", __name__)


@bp.app_template_filter("question_text")
def question_text(prompt: str, module_id: int) -> Markup:
    """``{{ q.prompt | question_text(module.id) }}``: a prompt with its module images."""
    return render_prompt(prompt, module_id)


@bp.route("/content/<int:module_id>/<path:path>")
@allow(AUTHENTICATED)
def asset(module_id: int, path: str):
    """An image of a module of the viewer's organisation (404 for any other organisation).

    ``?sha256=`` pins one exact file; without it the newest imported file for the path.
    """
    found = services.get_asset(current_user.organisation_id, module_id, path,
                               request.args.get("sha256") or None)
    response = make_response(found.data)
    response.headers["Content-Type"] = found.content_type
    response.headers["Cache-Control"] = "private, max-age=3600"
    # An SVG opened on its own must not run scripts or load anything.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; sandbox")
    response.set_etag(found.sha256)
    return response.make_conditional(request)
