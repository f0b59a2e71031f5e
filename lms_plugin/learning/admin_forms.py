"""Admin forms for assignment rules and the staff roster upload (issue 14)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class RuleForm(FlaskForm):
    module = SelectField("Module", validators=[DataRequired()], choices=[])
    name = StringField("Label (optional)", validators=[Optional(), Length(max=200)],
                       filters=[_strip])
    due_days = IntegerField("Due this many days after the rule starts to apply to a person",
                            validators=[Optional(), NumberRange(min=0, max=3650)])
    due_on = DateField("Or due on a fixed date", validators=[Optional()])
    recurrence_months = IntegerField("Repeat every N months after the last completion "
                                     "(empty: once)",
                                     validators=[Optional(), NumberRange(min=1, max=120)])
    facilities = StringField("Facilities (comma-separated; empty: any)",
                             validators=[Optional(), Length(max=2000)], filters=[_strip])
    departments = StringField("Departments (comma-separated; empty: any)",
                              validators=[Optional(), Length(max=2000)], filters=[_strip])
    job_roles = StringField("Job roles (comma-separated, as the modules' audience spells "
                            "them; empty: any)",
                            validators=[Optional(), Length(max=2000)], filters=[_strip])
    reopen_on_retraining = BooleanField("A retraining-required version reopens it "
                                        "(due at its go-live)", default=True)


class RemoveRuleForm(FlaskForm):
    pass


class RosterForm(FlaskForm):
    roster = FileField("Roster file (.csv or .xlsx)", validators=[FileRequired()])
    leavers = BooleanField("This is the FULL roster: mark everyone not in it as a leaver "
                           "(inactive, never deleted; admins excepted)")
