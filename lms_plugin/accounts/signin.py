"""The web edge of signing in and out: Flask-Login plus the server-side session record.

Views (local login, LTI launch, logout, password change) call these instead of
``login_user``/``logout_user`` so that every sign-in is a revocable server-side session
(:mod:`lms_plugin.accounts.sessions`) and every request re-checks it.
"""

from __future__ import annotations

from flask import session
from flask_login import login_user, logout_user

from lms_plugin.accounts import services, sessions
from lms_plugin.accounts.models import SignedInUser, User

#: Where the session id lives in Flask's (signed) session cookie.
SID_KEY = "_sid"


def sign_in(user: User | SignedInUser) -> None:
    """Start a fresh session for ``user``: everything in the old cookie is dropped (no
    fixation across the sign-in boundary), a new server-side record is written (flushed; the
    caller commits) and Flask-Login remembers the person."""
    old = session.get(SID_KEY)
    session.clear()
    session[SID_KEY] = sessions.start(user.id, replacing=old)  # one write; the old id dies
    login_user(user)


def sign_out() -> None:
    """End this browser's session: the record is deleted, so a copy of the cookie is dead."""
    sessions.end(session.get(SID_KEY))
    logout_user()
    session.clear()


def current_sid() -> str | None:
    sid = session.get(SID_KEY)
    return sid if isinstance(sid, str) else None


def load_user(login_id: str) -> User | None:
    """Flask-Login's user loader: the person named by the cookie, only while the cookie's
    server-side session is alive (not logged out, revoked, idle or past its lifetime). A dead
    session is cleared entirely, LTI launch data included."""
    user = services.load_user(login_id)
    if user is None or not sessions.is_alive(session.get(SID_KEY), user.id):
        session.clear()
        return None
    return user
