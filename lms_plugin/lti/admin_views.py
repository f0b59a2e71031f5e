"""The admin's platform registration pages and the tool keys (issue 13, Administration).

One code path with the CLI: every change goes through ``lti.services`` / ``lti.keys`` as
``lms-plugin platform …`` and ``lms-plugin keys …`` do, with the admin as the audit actor.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from lms_plugin.authz import allow
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db
from lms_plugin.lti import keys, services
from lms_plugin.lti.admin_forms import ButtonForm, DeploymentForm, PlatformAddForm, PlatformEditForm

bp = Blueprint("lti_admin", __name__, template_folder="templates")


def _field_error(form, exc: DomainError, default: str) -> None:
    """Put a service's refusal on the form field it names (or ``default``)."""
    name = exc.field if exc.field in form._fields else default
    if name == "deployment_id" and "deployment_id" not in form._fields:
        name = default
    form._fields[name].errors.append(exc.message)


@bp.route("/admin/platforms")
@allow("admin")
def platform_list():
    org_id = current_user.organisation_id
    keys.retire_expired()
    db.session.commit()
    return render_template(
        "lti/admin_platforms.html", platforms=services.list_platforms(org_id),
        last=services.last_launches(org_id), tool_keys=keys.all_keys(),
        urls=services.tool_urls(current_app.config["LMS_BASE_URL"]), button=ButtonForm())


@bp.route("/admin/platforms/new", methods=["GET", "POST"])
@allow("admin")
def platform_add():
    form = PlatformAddForm()
    if form.validate_on_submit():
        try:
            platform = services.register_platform(
                issuer=form.issuer.data, client_id=form.client_id.data,
                auth_login_url=form.auth_login_url.data,
                auth_token_url=form.auth_token_url.data, key_set_url=form.key_set_url.data,
                deployment_ids=[form.deployment_id.data] if form.deployment_id.data else [],
                name=form.name.data, organisation_id=current_user.organisation_id,
                token_audience=form.token_audience.data, role_mapping=form.mapping(),
                actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc, "issuer")
        else:
            keys.ensure_key()
            db.session.commit()
            flash(f"Registered {platform.name}. Paste the tool's URLs below into the LMS.",
                  "info")
            return redirect(url_for("lti_admin.platform_detail", platform_id=platform.id))
    status = 422 if request.method == "POST" else 200
    return render_template("lti/admin_platform_form.html", form=form, platform=None,
                           urls=services.tool_urls(current_app.config["LMS_BASE_URL"])), status


def _detail(platform, form, deployment_form, status: int = 200):
    return render_template(
        "lti/admin_platform_form.html", form=form, platform=platform,
        deployment_form=deployment_form, button=ButtonForm(),
        last=services.last_launches(current_user.organisation_id).get(platform.id),
        urls=services.tool_urls(current_app.config["LMS_BASE_URL"])), status


@bp.route("/admin/platforms/<int:platform_id>", methods=["GET", "POST"])
@allow("admin")
def platform_detail(platform_id: int):
    import json

    platform = services.get_platform(platform_id, current_user.organisation_id)
    form = PlatformEditForm(obj=platform if request.method == "GET" else None)
    if request.method == "GET":
        form.role_mapping.data = (json.dumps(platform.role_mapping, indent=2)
                                  if platform.role_mapping else "")
    if form.validate_on_submit():
        try:
            services.update_platform(
                platform.id, current_user.organisation_id, actor=current_user,
                name=form.name.data, auth_login_url=form.auth_login_url.data,
                auth_token_url=form.auth_token_url.data, key_set_url=form.key_set_url.data,
                token_audience=form.token_audience.data, role_mapping=form.mapping())
        except DomainError as exc:
            db.session.rollback()
            _field_error(form, exc, "name")
        else:
            db.session.commit()
            flash("Registration saved.", "info")
            return redirect(url_for("lti_admin.platform_detail", platform_id=platform.id))
    status = 422 if request.method == "POST" else 200
    return _detail(platform, form, DeploymentForm(formdata=None), status)


@bp.route("/admin/platforms/<int:platform_id>/deployments", methods=["POST"])
@allow("admin")
def add_deployment(platform_id: int):
    platform = services.get_platform(platform_id, current_user.organisation_id)
    form = DeploymentForm()
    if form.validate_on_submit():
        try:
            services.add_deployment(platform.id, form.deployment_id.data,
                                    organisation_id=current_user.organisation_id,
                                    actor=current_user)
        except DomainError as exc:
            db.session.rollback()
            form.deployment_id.errors.append(exc.message)
        else:
            db.session.commit()
            flash(f"Deployment {form.deployment_id.data.strip()} added.", "info")
            return redirect(url_for("lti_admin.platform_detail", platform_id=platform.id))
    platform = services.get_platform(platform_id, current_user.organisation_id)
    return _detail(platform, PlatformEditForm(obj=platform), form, 422)


@bp.route("/admin/platforms/<int:platform_id>/enabled", methods=["POST"])
@allow("admin")
def set_enabled(platform_id: int):
    enabled = request.form.get("enabled") == "1"
    platform = services.set_enabled(platform_id, enabled,
                                    organisation_id=current_user.organisation_id,
                                    actor=current_user)
    db.session.commit()
    flash(f"{platform.name} is {'enabled' if enabled else 'disabled: its launches are refused'}.",
          "info")
    return redirect(url_for("lti_admin.platform_detail", platform_id=platform_id), 303)


@bp.route("/admin/keys/rotate", methods=["POST"])
@allow("admin")
def rotate_key():
    """A new signing key (as ``lms-plugin keys rotate``); the old one stays published for
    :data:`keys.DEFAULT_GRACE` so platforms that cached the key set keep verifying."""
    key = keys.rotate(actor=current_user)
    db.session.commit()
    flash(f"New signing key {key.kid} is active; the previous key stays published for "
          f"{keys.DEFAULT_GRACE.days} days.", "info")
    return redirect(url_for("lti_admin.platform_list"), 303)
