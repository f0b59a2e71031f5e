"""The deep-linking module picker and the signed answer posted back to the LMS.

Reached only after a validated ``LtiDeepLinkingRequest`` launch by an instructor or content
developer (the launch keeps the request in ``session["lti_deep_link"]``). Thin views: the
rules live in :mod:`lms_plugin.lti.deep_linking`.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, session
from flask_login import current_user

from lms_plugin.authz import COURSE_AUTHOR, allow
from lms_plugin.catalog import services as catalog
from lms_plugin.errors import error_response
from lms_plugin.extensions import db
from lms_plugin.lti import deep_linking
from lms_plugin.lti.services import tool_urls
from lms_plugin.routing import query_int

bp = Blueprint("lti_deep_link", __name__, url_prefix="/lti", template_folder="templates")
SESSION_KEY = "lti_deep_link"


def _pending():
    pending = session.get(SESSION_KEY)
    if not isinstance(pending, dict):
        return None
    return pending


def _no_request():
    return error_response(400, "This page is where an instructor picks training modules "
                               "for an LMS course, after choosing this tool in the course "
                               "(Moodle: Add an activity or resource → External tool → "
                               "Select content; Canvas: the link or assignment chooser). "
                               "There is no content selection in progress here: start it "
                               "again from your course in the LMS.",
                          title="No content selection in progress")


def _picker_page(pending, args, *, error: str | None = None, chosen=(), status: int = 200):
    max_minutes = query_int(args, "max_minutes",
                            label="The duration (a whole number of minutes)")
    filters = {
        "system": (args.get("system") or "").strip() or None,
        "audience": (args.get("audience") or "").strip() or None,
        "max_minutes": max_minutes,
        "q": (args.get("q") or "").strip() or None,
    }
    org_id = current_user.organisation_id
    rows = deep_linking.picker_modules(org_id, **filters)
    return render_template(
        "lti/deep_link_picker.html", rows=rows, filters=filters,
        systems=catalog.list_systems(org_id), audiences=deep_linking.picker_audiences(org_id),
        accept_multiple=pending.get("accept_multiple", True), ags=pending.get("ags"),
        error=error, chosen=set(chosen)), status


@bp.route("/deep-link", methods=["GET"])
@allow("author", COURSE_AUTHOR)
def picker():
    pending = _pending()
    if pending is None:
        return _no_request()
    return _picker_page(pending, request.args)


NOTHING_CHOSEN = ("Choose at least one module to add, or choose Cancel to go back to the "
                  "course without adding anything.")


@bp.route("/deep-link", methods=["POST"])
@allow("author", COURSE_AUTHOR)
def respond():
    pending = _pending()
    if pending is None:
        return _no_request()
    cancel = bool(request.form.get("cancel"))
    slugs = [] if cancel else [s for s in request.form.getlist("module") if s.strip()]
    if not cancel and not slugs:
        # "Add" with nothing ticked: say so here rather than answer the LMS with an empty
        # selection (which Moodle shows as a silent return). Nothing is signed or sent.
        return _picker_page(pending, request.form, error=NOTHING_CHOSEN, status=422)
    launch_url = tool_urls(current_app.config["LMS_BASE_URL"])["launch_url"]
    return_url, token = deep_linking.build_response(
        pending, current_user.organisation_id, slugs, launch_url)
    session.pop(SESSION_KEY, None)  # one answer per request
    db.session.commit()  # the first signing key may just have been created
    response = current_app.make_response(render_template(
        "lti/deep_link_return.html", return_url=return_url, token=token, count=len(slugs)))
    response.headers["Cache-Control"] = "no-store"
    return response
