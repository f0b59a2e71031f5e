"""Landing page and health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from lms_plugin import health
from lms_plugin.authz import PUBLIC, allow

bp = Blueprint("core", __name__)


@bp.route("/")
@allow(PUBLIC)
def index():
    base = current_app.config["LMS_BASE_URL"]
    return render_template("landing.html", base_url=base)


@bp.route("/healthz")
@allow(PUBLIC)
def healthz():
    ok, report = health.check()
    return jsonify(report), 200 if ok else 503
