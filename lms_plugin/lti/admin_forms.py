"""Forms of the admin's platform pages (Flask-WTF: CSRF on every one). The rules are the
services' (``lti.services.register_platform`` / ``update_platform``): a form only carries
text to them, so the page and ``lms-plugin platform add`` refuse the same input."""

from __future__ import annotations

import json

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError


def _json_object(form, field) -> None:
    text = (field.data or "").strip()
    if not text:
        return
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, "
                              f"column {exc.colno}).") from None
    if not isinstance(value, dict):
        raise ValidationError('Give a JSON object, e.g. {"Mentor": ["learner"]}.')


class PlatformEditForm(FlaskForm):
    name = StringField("Name (for people)", validators=[Optional(), Length(max=200)])
    auth_login_url = StringField("Platform OIDC login (authorization) URL",
                                 validators=[DataRequired(), Length(max=500)])
    auth_token_url = StringField("Platform access token URL",
                                 validators=[DataRequired(), Length(max=500)])
    key_set_url = StringField("Platform public keyset (JWKS) URL",
                              validators=[Optional(), Length(max=500)])
    token_audience = StringField("Token audience (only if not the token URL)",
                                 validators=[Optional(), Length(max=500)])
    role_mapping = TextAreaField("Role mapping (JSON, optional)",
                                 validators=[Optional(), Length(max=5000), _json_object])

    def mapping(self) -> dict | None:
        text = (self.role_mapping.data or "").strip()
        return json.loads(text) if text else {}


class PlatformAddForm(PlatformEditForm):
    issuer = StringField("Issuer (the platform's site URL)",
                         validators=[DataRequired(), Length(max=255)])
    client_id = StringField("Client id the platform gave the tool",
                            validators=[DataRequired(), Length(max=255)])
    deployment_id = StringField("Deployment id (Moodle: the tool type id)",
                                validators=[Optional(), Length(max=255)])


class DeploymentForm(FlaskForm):
    deployment_id = StringField("Deployment id", validators=[DataRequired(), Length(max=255)])


class ButtonForm(FlaskForm):
    """A button that carries only the CSRF token (enable/disable, rotate)."""
