"""The demo LMS's pages and platform endpoints (``/demo/…``), served only when ``LMS_DEMO``.

All PUBLIC, like an LMS's own endpoints seen from the tool: the course page signs nobody in
by itself (each launch goes through the tool's LTI checks), the auth endpoint answers only
launches its own course page issued (a signed message hint), and the service endpoints need
a bearer token the demo's token endpoint issued to the tool's signed client assertion.
Thin views: the rules are in :mod:`lms_plugin.demo.services`.
"""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from lms_plugin.authz import PUBLIC, allow
from lms_plugin.demo import services
from lms_plugin.errors import ValidationFailed, error_response
from lms_plugin.extensions import csrf, db
from lms_plugin.routing import query_int

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")

LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


def _denied(exc: services.ServiceDenied):
    db.session.rollback()
    response = jsonify({"error": exc.error, "error_description": exc.description})
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
    return response


def _json(data, status: int = 200, mimetype: str = "application/json"):
    response = jsonify(data)
    response.status_code = status
    response.mimetype = mimetype
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/", methods=["GET"])
@allow(PUBLIC)
def course():
    """The demo course: launch as a person, its links, its gradebook, its roster."""
    setup = services.ensure_demo()
    db.session.commit()
    page = services.course_page()
    return render_template("demo/course.html", page=page, setup=setup,
                           personas=services.PERSONAS, roster=services.memberships()["members"])


@bp.route("/launch", methods=["GET"])
@allow(PUBLIC)
def launch():
    """Start a launch as the LMS does: send the browser to the tool's OIDC login."""
    persona = (request.args.get("person") or "").strip()
    link = query_int(request.args, "link", label="The course link")
    return redirect(services.login_url(persona, link))


@bp.route("/auth", methods=["GET", "POST"])
@csrf.exempt
@allow(PUBLIC)
def auth():
    """The platform's OIDC auth endpoint: the tool redirects here from /lti/login."""
    params = dict(request.values.items())
    if not params:
        return error_response(400, "This is the demo LMS's sign-in endpoint. The tool sends "
                                   "the browser here during a launch; start one from the "
                                   "demo course page.", title="Demo LMS sign-in endpoint")
    try:
        action, id_token, state = services.authorize(params)
    except ValidationFailed as exc:
        db.session.rollback()
        return error_response(400, f"The demo LMS refused this sign-in request: "
                                   f"{exc.message}.", title="Demo launch refused",
                              field=exc.field)
    db.session.commit()  # the demo key on first use
    response = render_template("demo/autopost.html", action=action, id_token=id_token,
                               state=state)
    return response, 200, {"Cache-Control": "no-store"}


@bp.route("/jwks", methods=["GET"])
@allow(PUBLIC)
def jwks():
    data = services.public_jwks()
    db.session.commit()
    return _json(data)


@bp.route("/token", methods=["POST"])
@csrf.exempt
@allow(PUBLIC)
def token():
    try:
        data = services.issue_token(dict(request.form.items()))
    except services.ServiceDenied as exc:
        return _denied(exc)
    return _json(data)


@bp.route("/lineitems", methods=["GET", "POST"])
@csrf.exempt
@allow(PUBLIC)
def lineitems():
    try:
        if request.method == "GET":
            services.check_bearer(request.headers.get("Authorization"),
                                  services.SCOPE_LINEITEM, services.SCOPE_LINEITEM_READONLY)
            return _json(services.list_lineitems(request.args.get("resource_id"),
                                                 request.args.get("resource_link_id")),
                         mimetype=LINEITEMS_TYPE)
        services.check_bearer(request.headers.get("Authorization"), services.SCOPE_LINEITEM)
        item = services.create_lineitem(request.get_json(silent=True, force=True))
    except services.ServiceDenied as exc:
        return _denied(exc)
    db.session.commit()
    return _json(item, 201, LINEITEM_TYPE)


@bp.route("/lineitems/<int:lineitem_id>", methods=["GET"])
@allow(PUBLIC)
def lineitem(lineitem_id: int):
    try:
        services.check_bearer(request.headers.get("Authorization"),
                              services.SCOPE_LINEITEM, services.SCOPE_LINEITEM_READONLY)
        item = services.get_lineitem(lineitem_id)
    except services.ServiceDenied as exc:
        return _denied(exc)
    return _json(services.lineitem_json(item), mimetype=LINEITEM_TYPE)


@bp.route("/lineitems/<int:lineitem_id>/scores", methods=["POST"])
@csrf.exempt
@allow(PUBLIC)
def scores(lineitem_id: int):
    try:
        services.check_bearer(request.headers.get("Authorization"), services.SCOPE_SCORE)
        services.post_score(lineitem_id, request.get_json(silent=True, force=True))
    except services.ServiceDenied as exc:
        return _denied(exc)
    db.session.commit()
    return "", 204


@bp.route("/memberships", methods=["GET"])
@allow(PUBLIC)
def memberships():
    try:
        services.check_bearer(request.headers.get("Authorization"), services.SCOPE_NRPS)
    except services.ServiceDenied as exc:
        return _denied(exc)
    return _json(services.memberships(), mimetype=MEMBERSHIP_TYPE)


@bp.route("/deep-link-return", methods=["GET", "POST"])
@csrf.exempt
@allow(PUBLIC)
def deep_link_return():
    """Where the tool posts the instructor's choice (the signed deep-linking response)."""
    if request.method == "GET":
        return error_response(400, "This is where the tool posts the modules an instructor "
                                   "chose for the demo course. Open the demo course and "
                                   "choose \"Add training\" as the instructor.",
                              title="Demo LMS: deep-linking return")
    try:
        links = services.accept_deep_link_response(request.form.get("JWT") or "")
    except ValidationFailed as exc:
        db.session.rollback()
        return error_response(400, f"The demo LMS refused the tool's answer: {exc.message}.",
                              title="Demo LMS refused the answer", field=exc.field)
    db.session.commit()
    if links:
        flash(f"Added to the demo course: {', '.join(link.title for link in links)}.",
              "success")
    else:
        flash("Nothing was added to the demo course.", "info")
    return redirect(url_for("demo.course"))
