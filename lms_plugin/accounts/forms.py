from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from lms_plugin.authz import ROLES

_MISMATCH = "The two passwords are not the same; type the new password twice."


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320)],
                       filters=[_strip])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(min=12,
                                                                                   max=1024)])
    confirm_password = PasswordField("New password again", validators=[
        DataRequired("Type the new password a second time."),
        EqualTo("new_password", message=_MISMATCH)])


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=320)],
                       filters=[_strip])


class ResetPasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[
        DataRequired(), Length(min=12, max=1024,
                               message="Choose a password of 12 to 1024 characters.")])
    confirm_password = PasswordField("New password again", validators=[
        DataRequired("Type the new password a second time."),
        EqualTo("new_password", message=_MISMATCH)])


class OrganisationSettingsForm(FlaskForm):
    """Name and time zone (an IANA name, checked by ``services.check_timezone``)."""

    name = StringField("Organisation name", validators=[DataRequired(), Length(max=200)])
    timezone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[(r, r.capitalize()) for r in ROLES])


class ActiveForm(FlaskForm):
    """Deactivate / reactivate: the button carries nothing but the CSRF token."""


class LocalSigninForm(FlaskForm):
    email = EmailField("Email for local sign-in",
                       validators=[DataRequired(), Email(), Length(max=254)])
