"""Local sign-in, sign-out, password change and the admin's people and audit pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from lms_plugin.accounts import services
from lms_plugin.accounts.forms import ChangePasswordForm, LoginForm
from lms_plugin.authz import AUTHENTICATED, PUBLIC, ROLES, allow
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db, limiter

bp = Blueprint("accounts", __name__, template_folder="templates")


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("core.index")


def _login_limit() -> str:
    return current_app.config["LMS_LOGIN_RATE_LIMIT"]


def _email_key() -> str:
    return "login-email:" + (request.form.get("email") or "").strip().lower()


def _failed(response) -> bool:
    return response.status_code != 302


@bp.route("/auth/login", methods=["GET", "POST"])
@allow(PUBLIC)
# Failed attempts only, counted per account and (more loosely: a hospital NATs many staff
# behind one address) per address; Redis-backed when configured so all workers share counts.
@limiter.limit("30/minute;300/hour", methods=["POST"], deduct_when=_failed)
@limiter.limit(_login_limit, methods=["POST"], key_func=_email_key,
               deduct_when=_failed)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is not None:
            services.record_audit("user.login", actor=user, target=("user", user.id))
            db.session.commit()
            session.clear()  # a fresh session: no fixation across the sign-in boundary
            login_user(user)
            if user.credential and user.credential.must_change_password:
                flash("Please choose a new password before you continue.", "info")
                return redirect(url_for("accounts.change_password"))
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("Email or password is not correct.")
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/login.html", form=form), status


@bp.route("/auth/logout", methods=["POST"])
@allow(AUTHENTICATED)
def logout():
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("core.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@allow(AUTHENTICATED)
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(current_user, form.current_password.data,
                                     form.new_password.data)
        except ValidationFailed as exc:
            getattr(form, exc.field or "new_password").errors.append(exc.message)
        else:
            db.session.commit()
            login_user(current_user)  # re-issue the session with the new token
            flash("Password changed.", "info")
            return redirect(url_for("core.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/password.html", form=form), status


@bp.route("/admin/users")
@allow("admin")
def user_list():
    q = request.args.get("q", "")
    role = request.args.get("role", "")
    after = request.args.get("after", "")
    if after and not (after.isdigit() and 0 < int(after) < 2**63):
        abort(400, "'after' must be a person's id, as the page's Next link gives.")
    try:
        page = services.list_users(current_user.organisation_id, q=q, role=role or None,
                                   after=int(after) if after else None)
    except ValidationFailed as exc:
        abort(400, exc.message)
    return render_template("accounts/users.html", page=page, q=q, role=role, roles=ROLES,
                           first_page=not after)


@bp.route("/admin/users/<int:user_id>")
@allow("admin")
def user_detail(user_id: int):
    user = services.get_user(current_user.organisation_id, user_id)
    return render_template("accounts/user.html", person=user)


@bp.route("/admin/audit")
@allow("admin", "officer")
def audit_log():
    events = services.list_audit(current_user.organisation_id)
    return render_template("accounts/audit.html", events=events)
