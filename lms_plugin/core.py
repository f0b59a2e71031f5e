"""Landing page and health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for
from flask_login import current_user

from lms_plugin import health
from lms_plugin.authz import PUBLIC, allow

bp = Blueprint("core", __name__)


@bp.route("/")
@allow(PUBLIC)
def index():
    """The landing page; a signed-in person goes to their own home (issue 12.6:
    ``layout.HOMES``: admin home, modules, the audit log for officers, My training)."""
    if current_user.is_authenticated:
        from lms_plugin import layout

        home = layout.home_url()
        if home != url_for("core.index"):
            return redirect(home)
    base = current_app.config["LMS_BASE_URL"]
    return render_template("landing.html", base_url=base)


@bp.route("/healthz")
@allow(PUBLIC)
def healthz():
    ok, report = health.check()
    return jsonify(report), 200 if ok else 503
