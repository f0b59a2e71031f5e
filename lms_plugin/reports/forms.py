from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired


class ImportFrameworkForm(FlaskForm):
    framework_file = FileField("Framework CSV (Moodle competency framework layout)",
                               validators=[FileRequired("Choose the framework's CSV file.")])
    evidence_file = FileField("Evidence CSV (optional: Competency ID number, Module)")
