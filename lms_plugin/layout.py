"""The one layout's data: the navigation each role sees, each role's home, the way back to
the LMS course, and times in the organisation's zone (shell module: imports anything).

Add a page to the navigation with ONE line in :data:`NAV`: ``(label, endpoint, roles)``.
An entry whose endpoint the app does not have (a page another branch has not merged yet)
is skipped, so the table may name pages before they exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, has_request_context, session, url_for
from flask_login import current_user

from lms_plugin.accounts import timezones
from lms_plugin.authz import COURSE_AUTHOR, ROLES

ALL_ROLES = ROLES
#: Not an organisation role: a person the organisation names as a clinical reviewer
#: (``catalog.signoff.is_reviewer``, one statement per page for signed-in people).
SIGNOFF_REVIEWER = "signoff reviewer"
#: (label, endpoint, roles that see it) in the order shown. ``COURSE_AUTHOR``: the author
#: of the LMS course the session was launched from (an Instructor's launch).
NAV: list[tuple[str, str, tuple[str, ...]]] = [
    ("My training", "learning.home", ALL_ROLES),
    ("CE credits", "credits.transcript", ALL_ROLES),
    ("Modules", "authoring.module_list", ("author", "admin")),
    ("Sign-off", "signoff.waiting", (SIGNOFF_REVIEWER,)),
    ("Courses", "lti_roster.courses", ("author", "admin", COURSE_AUTHOR)),
    ("Reports", "reports.competency_matrix", ("officer", "admin")),
    ("Item analysis", "reports.item_modules", ("author", "officer", "admin")),
    ("CE exports", "credits.registry_exports", ("officer", "admin")),
    ("Admin home", "admin.home", ("admin",)),
    ("Platforms", "lti_admin.platform_list", ("admin",)),
    ("People", "accounts.user_list", ("admin",)),
    ("Assignments", "learning_admin.rules", ("admin",)),
    ("Jobs", "jobs.job_list", ("admin",)),
    ("Audit", "accounts.audit_log", ("admin", "officer")),
    ("Settings", "accounts.settings", ("admin",)),
]

#: Where a signed-in person lands (``/`` and after sign-in): the first entry whose role
#: they hold and whose page exists.
HOMES: list[tuple[str, str]] = [
    ("admin", "admin.home"),
    ("author", "authoring.module_list"),
    ("officer", "reports.competency_matrix"),
    ("author", "learning.home"),
    ("learner", "learning.home"),
]


def _roles() -> frozenset[str]:
    if not has_request_context() or not current_user or not current_user.is_authenticated:
        return frozenset()
    roles = set(current_user.role_names)
    if "author" in ((session.get("lti") or {}).get("course_rights") or ()):
        roles.add(COURSE_AUTHOR)
    return frozenset(roles)


def nav_items(endpoints: Any, roles: frozenset[str], current: str | None
              ) -> list[dict[str, Any]]:
    """The entries of :data:`NAV` for ``roles`` whose endpoint exists in ``endpoints``:
    ``[{"label", "endpoint", "current"}]``."""
    return [{"label": label, "endpoint": endpoint, "current": endpoint == current}
            for label, endpoint, allowed in NAV
            if endpoint in endpoints and roles & set(allowed)]


def home_endpoint(endpoints: Any, roles: frozenset[str]) -> str | None:
    """The endpoint of this person's home (:data:`HOMES`), or None (no role: the landing
    page)."""
    for role, endpoint in HOMES:
        if role in roles and endpoint in endpoints:
            return endpoint
    return None


def home_url() -> str:
    """The signed-in person's home URL, the landing page otherwise."""
    endpoint = home_endpoint(current_app.view_functions, _roles())
    return url_for(endpoint) if endpoint else url_for("core.index")


def course_return_url() -> str | None:
    """The LMS's ``launch_presentation.return_url`` of this session's launch (LTI 1.3 core
    §5.4.3), for the "Back to the course" link; only an http(s) URL is ever given back."""
    url = (session.get("lti") or {}).get("return_url")
    if not isinstance(url, str):
        return None
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def in_lms_frame() -> bool:
    """True inside an LTI launch the LMS shows in a frame (``document_target`` ``iframe``
    or ``frame``; absent means embedded, the Moodle and Canvas default): no sign-out link
    there, the LMS session is what signs people out."""
    lti = session.get("lti")
    return bool(lti) and lti.get("document_target") != "window"


def localtime(when: Any, seconds: bool = False, empty: str = "—") -> Any:
    """Jinja filter ``{{ dt | localtime }}``: a ``<time>`` element in the signed-in
    person's organisation's zone (else ``LMS_DEFAULT_TIMEZONE``) with the zone shown."""
    name = (current_user.organisation.timezone if has_request_context() and current_user
            and current_user.is_authenticated
            and getattr(current_user, "organisation", None) is not None
            else current_app.config.get("LMS_DEFAULT_TIMEZONE"))
    return timezones.time_element(when, timezones.zone(name), seconds=seconds, empty=empty)


def module_notices(module: Any) -> list[dict[str, str]]:
    """Jinja global: what other packages say about a module on its learner page (e.g. the
    CE activity, issue 15), from the providers packages register in
    ``app.extensions["lms_plugin.module_notices"]`` (a provider takes the organisation id,
    module id and slug and returns ``{"text", "href", "link"}`` or None). ``learning`` sits
    below those packages and cannot import them; this keeps the page one template."""
    providers = current_app.extensions.get("lms_plugin.module_notices", ())
    found = (provider(module.organisation_id, module.id, module.slug) for provider in providers)
    return [notice for notice in found if notice]


def register(app: Flask) -> None:
    """The ``localtime`` filter and the layout's values in every template."""
    app.add_template_filter(localtime, "localtime")
    app.add_template_global(module_notices, "module_notices")

    @app.context_processor
    def _layout() -> dict[str, Any]:
        from flask import request

        if not has_request_context():  # a mail or a PDF rendered by a job: no page layout
            return {"nav": [], "course_return_url": None, "in_lms_frame": False}
        roles = _roles()
        if "signoff.waiting" in app.view_functions and current_user.is_authenticated:
            from lms_plugin.catalog.signoff import is_reviewer

            if is_reviewer(current_user):
                roles = roles | {SIGNOFF_REVIEWER}
        return {
            "nav": nav_items(app.view_functions, roles, request.endpoint),
            "course_return_url": course_return_url(),
            "in_lms_frame": in_lms_frame(),
        }
