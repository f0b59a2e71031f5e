"""Authorization declared per view, in one place: the ``@allow(...)`` decorator.

Every endpoint must carry a policy; ``create_app`` refuses to start if one does not, and
``tests/test_authz.py`` walks the URL map so a new route cannot ship without a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, current_app
from flask_login import current_user

from lms_plugin.extensions import login_manager

PUBLIC = "public"
AUTHENTICATED = "authenticated"
ROLES = ("learner", "author", "officer", "admin")
#: The author of the course (LTI context) the session was launched from: rights an LTI
#: launch gives are scoped to their course (issue 10 item 5). The views holding this
#: policy must themselves keep to that course (``lti.course_scope``).
COURSE_AUTHOR = "course_author"
_VALID = {PUBLIC, AUTHENTICATED, COURSE_AUTHOR, *ROLES}
#: Where the course-scoped roles of the current request come from: a function registered
#: by the LTI package at app creation (this module knows nothing of LTI).
COURSE_ROLES_PROVIDER = "lms_course_roles"


def course_roles() -> frozenset[str]:
    """The signed-in person's roles in the session's course (empty without a provider)."""
    provider = current_app.extensions.get(COURSE_ROLES_PROVIDER)
    return provider() if provider is not None else frozenset()


def allow(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Allow the view to ``PUBLIC``, any ``AUTHENTICATED`` user, or holders of these roles.

    Roles are those granted in the user's own organisation; ``COURSE_AUTHOR`` also admits
    the author of the session's course. Object-level isolation (a record of another
    organisation, another course) is the service's job: it answers 403/404 for those.
    """
    unknown = set(roles) - _VALID
    if not roles or unknown:
        raise ValueError(f"allow() needs roles from {sorted(_VALID)}, got {roles}")
    policy = frozenset(roles)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if PUBLIC not in policy:
                if not current_user.is_authenticated:
                    return login_manager.unauthorized()
                if (AUTHENTICATED not in policy and not (current_user.role_names & policy)
                        and not (COURSE_AUTHOR in policy and "author" in course_roles())):
                    abort(403)
            return view(*args, **kwargs)

        wrapped.__access__ = policy  # type: ignore[attr-defined]
        return wrapped

    return decorator


def policy_of(view: Callable[..., Any]) -> frozenset[str] | None:
    return getattr(view, "__access__", None)


def check_policies(app: Flask) -> None:
    """Refuse to start when any endpoint lacks an ``@allow`` policy."""
    missing = sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint != "static" and policy_of(view) is None
    )
    if missing:
        raise RuntimeError(f"endpoints without an @allow policy: {', '.join(missing)}")
