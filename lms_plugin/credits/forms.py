"""CE forms. Values are checked by the services (one place for the rules); the forms give
labelled controls and CSRF (Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from lms_plugin.credits.models import PROFESSIONS


class CsrfOnlyForm(FlaskForm):
    """The evaluation (its questions are per activity and read from the posted data)."""


class ClaimForm(FlaskForm):
    profession = SelectField("Your profession", validate_choice=False,
                             choices=[SelectChoice("", "Choose…")]
                             + [SelectChoice(k, v) for k, v in PROFESSIONS.items()])
    credit_type = SelectField("Credit type", validate_choice=False)
    credits = StringField("Credits to claim", validators=[Optional()])
    consent = BooleanField("I agree that this credit and the identifiers below are reported "
                           "to the registry for my credit type (ACCME PARS, NABP CPE Monitor "
                           "or CE Broker)")
    npi = StringField("NPI (10 digits)", validators=[Optional()])
    licence_state = StringField("Licence state (two letters)", validators=[Optional()])
    licence_number = StringField("Licence number", validators=[Optional()])
    nabp_eprofile_id = StringField("NABP e-Profile ID", validators=[Optional()])
    birth_month = SelectField("Birth month", validate_choice=False,
                              choices=[SelectChoice("", "—")]
                              + [SelectChoice(str(m), str(m)) for m in range(1, 13)])
    birth_day = SelectField("Birth day", validate_choice=False,
                            choices=[SelectChoice("", "—")]
                            + [SelectChoice(str(d), str(d)) for d in range(1, 32)])


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms 3.3 choices (tuples are deprecated there)."""
    return [SelectChoice(value, label) for value, label in pairs]


class ActivityForm(FlaskForm):
    spec = TextAreaField("Credit activity (YAML, the credit: block of module.yaml)")


class CorrectionForm(FlaskForm):
    reason = TextAreaField("Reason for the correction", validators=[Optional()])
    credits = StringField("Credits to reissue (leave empty to revoke only)",
                          validators=[Optional()])
