"""Authorization declared per view, in one place: the ``@allow(...)`` decorator.

Every endpoint must carry a policy; ``create_app`` refuses to start if one does not, and
``tests/test_authz.py`` walks the URL map so a new route cannot ship without a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort
from flask_login import current_user

from lms_plugin.extensions import login_manager

PUBLIC = "public"
AUTHENTICATED = "authenticated"
ROLES = ("learner", "author", "officer", "admin")
_VALID = {PUBLIC, AUTHENTICATED, *ROLES}


def allow(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Allow the view to ``PUBLIC``, any ``AUTHENTICATED`` user, or holders of these roles.

    Roles are those granted in the user's own organisation. Object-level isolation (a record
    of another organisation) is the service's job: it answers 404 for foreign ids.
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
                if AUTHENTICATED not in policy and not (current_user.role_names & policy):
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
