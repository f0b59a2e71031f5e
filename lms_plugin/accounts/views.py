"""Local sign-in, sign-out, password change; the admin's people list, person changes,
organisation settings; the audit log page and its CSV export."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from lms_plugin.accounts import password_reset, services, signin, tasks
from lms_plugin.accounts.forms import (
    ActiveForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    LocalSigninForm,
    LoginForm,
    OrganisationSettingsForm,
    ResetPasswordForm,
    RoleForm,
)
from lms_plugin.authz import AUTHENTICATED, PUBLIC, ROLES, allow
from lms_plugin.errors import Conflict, DomainError, NotFound, ValidationFailed
from lms_plugin.extensions import db, limiter
from lms_plugin.routing import query_int

bp = Blueprint("accounts", __name__, template_folder="templates")


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect to another host."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("core.index")


def _pair_limit() -> str:
    return current_app.config["LMS_LOGIN_RATE_LIMIT"]


def _address_limit() -> str:
    return current_app.config["LMS_LOGIN_ADDRESS_LIMIT"]


def _email() -> str:
    return (request.form.get("email") or "").strip().lower()[:320]


def _pair_key() -> str:
    # Account AND address: a guesser elsewhere slows down only their own pair, so the
    # account holder signing in from their own workstation is never locked out by them.
    return f"login-pair:{_email()}|{request.remote_addr}"


def _failed(response) -> bool:
    # Only refused sign-ins count: not successes, and not requests already refused with 429
    # (a throttled holder retrying must not push their own wait further out).
    return response.status_code == 422


def _retry_message() -> str:
    # The longest wait among the limits this request broke (every tier is evaluated).
    resets = [limit.reset_at for limit in limiter.current_limits if limit.breached]
    wait = max([reset - time.time() for reset in resets] or [60.0])
    minutes = max(round(wait / 60), 1)
    when = "a minute" if minutes == 1 else f"{minutes} minutes"
    return f"Too many attempts. Try again in {when}."


def _throttled(limit, per_address: bool) -> None:
    """Audit a throttled sign-in (once per pair and minute, so a flood is one line)."""
    services.record_login_throttled(_email(), request.remote_addr or "unknown",
                                    str(limit.limit), per_address=per_address)
    db.session.commit()


def _address_throttled(limit) -> None:
    _throttled(limit, per_address=True)


def _pair_throttled(limit) -> None:
    _throttled(limit, per_address=False)


@bp.route("/auth/login", methods=["GET", "POST"])
@allow(PUBLIC)
# Failed attempts only, counted per address (loosely: a hospital NATs many staff behind one
# address) and per account+address pair in tiers (slow down, do not lock out). Shared by all
# processes: Redis when configured, else the database (accounts.limits_storage).
@limiter.limit(_address_limit, methods=["POST"], deduct_when=_failed,
               error_message=_retry_message, on_breach=_address_throttled)
@limiter.limit(_pair_limit, methods=["POST"], key_func=_pair_key, deduct_when=_failed,
               error_message=_retry_message, on_breach=_pair_throttled)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is not None:
            services.record_audit("user.login", actor=user, target=("user", user.id))
            signin.sign_in(user)  # a fresh, server-side session: no fixation, revocable
            db.session.commit()
            if user.credential and user.credential.must_change_password:
                flash("Please choose a new password before you continue.", "info")
                return redirect(url_for("accounts.change_password"))
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("Email or password is not correct.")
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/login.html", form=form), status


def _accepted(response) -> bool:
    return response.status_code == 200


def _not_done(response) -> bool:
    return response.status_code != 302


def _reset_email_key() -> str:
    # Per address asked about, whoever asks: nobody is mail-bombed from many addresses.
    return f"reset-email:{_email()}"


@bp.route("/auth/forgot", methods=["GET", "POST"])
@allow(PUBLIC)
# Every accepted request counts (the answer is the same for known and unknown addresses):
# per address like sign-in, and per email asked about. A breach shows _retry_message's words.
@limiter.limit(_address_limit, methods=["POST"], deduct_when=_accepted,
               error_message=_retry_message)
@limiter.limit(_pair_limit, methods=["POST"], key_func=_reset_email_key,
               deduct_when=_accepted, error_message=_retry_message)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        tasks.queue_reset_request(form.email.data)  # the same work for any address
        db.session.commit()
        minutes = int(password_reset.TOKEN_LIFETIME.total_seconds() // 60)
        return render_template("accounts/forgot.html", form=form, sent=form.email.data,
                               minutes=minutes)
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/forgot.html", form=form, sent=None), status


def _no_referrer(response):
    # The token is in the path: never hand it to another site in a Referer header.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route(password_reset.RESET_PATH + "<string(maxlength=200):token>", methods=["GET", "POST"])
@allow(PUBLIC)
# Refused submissions count per address (a token is 256 random bits: this only keeps a
# script from hammering the page).
@limiter.limit(_address_limit, methods=["POST"], deduct_when=_not_done,
               error_message=_retry_message)
def reset_password(token: str):
    form = ResetPasswordForm()
    try:
        person = password_reset.check_token(token)
        if form.validate_on_submit():
            try:
                password_reset.reset_password(token, form.new_password.data)
            except ValidationFailed as exc:
                db.session.rollback()
                getattr(form, exc.field or "new_password").errors.append(exc.message)
            else:
                db.session.commit()
                flash("Your password has been changed. Sign in with the new password.", "info")
                return _no_referrer(redirect(url_for("accounts.login")))
    except NotFound as exc:
        db.session.rollback()
        return _no_referrer(make_response(render_template(
            "accounts/reset.html", form=form, invalid=exc.message), 410))
    status = 422 if request.method == "POST" else 200
    return _no_referrer(make_response(render_template(
        "accounts/reset.html", form=form, person=person, invalid=None), status))


@bp.route("/auth/logout", methods=["POST"])
@allow(AUTHENTICATED)
def logout():
    signin.sign_out()  # deletes the server-side record: a copied cookie is dead too
    db.session.commit()
    flash("You have signed out.", "info")
    return redirect(url_for("core.index"))


@bp.route("/account/password", methods=["GET", "POST"])
@allow(AUTHENTICATED)
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(current_user, form.current_password.data,
                                     form.new_password.data, keep_session=signin.current_sid())
        except ValidationFailed as exc:
            getattr(form, exc.field or "new_password").errors.append(exc.message)
        else:
            signin.sign_in(current_user)  # a new session id too; every other one has ended
            db.session.commit()
            flash("Password changed.", "info")
            return redirect(url_for("core.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/password.html", form=form), status


@bp.route("/admin/users")
@allow("admin")
def user_list():
    q = request.args.get("q", "")
    role = request.args.get("role", "")
    try:
        after = query_int(request.args, "after", minimum=1,
                          label="'after' (a person's id, as the page's Next link gives)")
        page = services.list_users(current_user.organisation_id, q=q, role=role or None,
                                   after=after)
    except ValidationFailed as exc:
        abort(400, exc.message)
    return render_template("accounts/users.html", page=page, q=q, role=role, roles=ROLES,
                           first_page=after is None)


@bp.route("/admin/settings", methods=["GET", "POST"])
@allow("admin")
def settings():
    """The organisation's name and time zone (every page shows times in it)."""
    org = current_user.organisation
    form = OrganisationSettingsForm(obj=org)
    if form.validate_on_submit():
        try:
            services.update_organisation(org.id, name=form.name.data,
                                         timezone=form.timezone.data, actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            getattr(form, exc.field if exc.field in ("name", "timezone") else "name"
                    ).errors.append(exc.message)
        else:
            db.session.commit()
            flash("Settings saved.", "info")
            return redirect(url_for("accounts.settings"))
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/settings.html", form=form), status


def _person_action(user_id: int, work) -> Any:
    """Run one admin change on a person, commit, and go back to their page; a refused
    change goes back with the reason (nothing written)."""
    try:
        work()
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.person", user_id=user_id)), 303
    db.session.commit()
    return redirect(url_for("admin.person", user_id=user_id)), 303


@bp.route("/admin/users/<int:user_id>/roles", methods=["POST"])
@allow("admin")
def grant_role(user_id: int):
    services.get_user(current_user.organisation_id, user_id)  # 404 before reading the form
    form = RoleForm()
    if not form.validate_on_submit():
        abort(422, "Choose a role: " + ", ".join(ROLES) + ".")
    return _person_action(user_id, lambda: services.admin_grant_role(
        current_user.organisation_id, user_id, form.role.data, current_user))


@bp.route("/admin/users/<int:user_id>/roles/<role>/revoke", methods=["POST"])
@allow("admin")
def revoke_role(user_id: int, role: str):
    return _person_action(user_id, lambda: services.admin_revoke_role(
        current_user.organisation_id, user_id, role, current_user))


@bp.route("/admin/users/<int:user_id>/local-signin", methods=["POST"])
@allow("admin")
def add_local_signin(user_id: int):
    """Give a person who arrives by LTI a local sign-in (same person, same history)."""
    services.get_user(current_user.organisation_id, user_id)
    form = LocalSigninForm()
    if not form.validate_on_submit():
        flash("Give a valid email address for the local sign-in.", "error")
        return redirect(url_for("admin.person", user_id=user_id)), 303
    try:
        password = services.add_local_signin(current_user.organisation_id, user_id,
                                             form.email.data, current_user)
    except (ValidationFailed, Conflict) as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.person", user_id=user_id)), 303
    db.session.commit()
    flash(f"Local sign-in created for {form.email.data.strip().lower()}. One-time password "
          f"(shown once; they choose their own at first sign-in): {password}", "info")
    return redirect(url_for("admin.person", user_id=user_id)), 303


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@allow("admin")
def set_active(user_id: int):
    services.get_user(current_user.organisation_id, user_id)
    ActiveForm()  # CSRF is checked app-wide before the view
    active = request.form.get("active") == "1"
    return _person_action(user_id, lambda: services.set_user_active(
        current_user.organisation_id, user_id, active, current_user))


def _audit_filter():
    """The audit page's filters from the query string (both the page and its CSV export).

    Dates are days in the organisation's time zone (``YYYY-MM-DD``), inclusive. Raises
    ValidationFailed naming the field for a bad value."""
    from datetime import date

    from lms_plugin.accounts import timezones

    args = request.args
    person = (args.get("actor") or "").strip()
    actor = services.find_person(current_user.organisation_id, person).id if person else None
    days = {}
    for name in ("since", "until"):
        raw = (args.get(name) or "").strip()
        try:
            days[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            raise ValidationFailed(f"{raw[:40]!r} is not a date (YYYY-MM-DD)",
                                   field=name) from None
    if days["since"] and days["until"] and days["until"] < days["since"]:
        raise ValidationFailed("the range ends before it starts", field="until")
    low, high = timezones.day_range(days["since"], days["until"],
                                    timezones.zone(current_user.organisation.timezone))
    return services.check_audit_filter(actor, args.get("action"), args.get("target_type"),
                                       args.get("target_id"), low, high)


AUDIT_FILTER_ARGS = ("actor", "action", "target_type", "target_id", "since", "until")


@bp.route("/admin/audit")
@allow("admin", "officer")
def audit_log():
    """Filters by person, action, target and date range, newest first (keyset pages)."""
    values = {name: (request.args.get(name) or "").strip()[:100] for name in AUDIT_FILTER_ARGS}
    query = {name: value for name, value in values.items() if value}
    try:
        audit_filter = _audit_filter()
        before = query_int(request.args, "before", minimum=1,
                           label="'before' (an entry's id, as the Older link gives)")
        page = services.list_audit(current_user.organisation_id, audit_filter, before=before)
    except ValidationFailed as exc:
        return render_template("accounts/audit.html", page=None, values=values,
                               query=query, error=exc, first_page=True), 422
    actor = (services.get_user(current_user.organisation_id, audit_filter.actor_id)
             if audit_filter.actor_id else None)  # one read: find_person's row is cached
    return render_template("accounts/audit.html", page=page, values=values, query=query,
                           error=None, first_page=before is None, actor=actor)


@bp.route("/admin/audit.csv")
@allow("admin", "officer")
def audit_export():
    """Every matching entry as CSV (UTF-8, RFC 4180), streamed in keyset batches so a
    million entries never sit in memory. The export itself is audited."""
    import csv
    import io

    from flask import Response

    try:
        audit_filter = _audit_filter()
    except ValidationFailed as exc:
        abort(422, exc.message)
    services.record_audit("audit.export", actor=current_user,
                          target=("organisation", current_user.organisation_id),
                          details={k: v for k, v in request.args.items()
                                   if k in AUDIT_FILTER_ARGS and v})
    db.session.commit()
    org_id = current_user.organisation_id

    def _safe(value):
        # CSV injection (OWASP): a cell a spreadsheet would run as a formula is quoted.
        text_ = str(value)
        return "'" + text_ if text_[:1] in ("=", "+", "-", "@", "\t", "\r") else text_

    engine = db.engine

    def generate():
        # Its own connection, no Flask context: the body is read after the request's
        # context has ended (stream_with_context would keep the request's context pushed
        # and leak it when the body is never read). Closed with the response.
        with engine.connect() as conn:
            yield from _rows(conn)

    def _rows(conn):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(services.AUDIT_CSV_HEADER)
        for row in services.iter_audit_rows(conn, org_id, audit_filter):
            writer.writerow([_safe(v) for v in row])
            if buffer.tell() > 64_000:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-log.csv"})
