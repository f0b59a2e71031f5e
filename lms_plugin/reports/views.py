"""Officer/admin pages: competency frameworks (list, import, export), the competency matrix
with its drill-down, and streamed exports (inline or background)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask_login import current_user

from lms_plugin.accounts.services import record_audit
from lms_plugin.authz import allow
from lms_plugin.db import utcnow
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.reports import exports, frameworks, items, matrix, records
from lms_plugin.reports.forms import ImportFrameworkForm

bp = Blueprint("reports", __name__, template_folder="templates", url_prefix="/reports")

OFFICERS = ("officer", "admin")
#: Rows of a table shown on the page (the export holds all of them).
PAGE_ROWS = 200


@bp.route("/frameworks")
@allow(*OFFICERS)
def framework_list():
    return render_template("reports/frameworks.html",
                           frameworks=frameworks.list_frameworks(current_user.organisation_id))


@bp.route("/frameworks/import", methods=["GET", "POST"])
@allow(*OFFICERS)
def framework_import():
    form = ImportFrameworkForm()
    if form.validate_on_submit():
        upload = form.framework_file.data
        evidence = form.evidence_file.data
        try:
            result = frameworks.import_framework(
                current_user.organisation_id, upload.read(),
                evidence.read() if evidence else None, actor=current_user,
                filename=upload.filename or "framework CSV")
        except ValidationFailed as exc:
            db.session.rollback()
            target = form.evidence_file if exc.field == "evidence" else form.framework_file
            target.errors = [exc.message]
            return render_template("reports/framework_import.html", form=form), 422
        db.session.commit()
        return redirect(url_for("reports.framework_detail", framework_id=result.framework.id))
    status = 422 if form.errors else 200
    return render_template("reports/framework_import.html", form=form), status


@bp.route("/frameworks/<int:framework_id>")
@allow(*OFFICERS)
def framework_detail(framework_id: int):
    framework = frameworks.get_framework(framework_id, current_user.organisation_id)
    return render_template("reports/framework.html", framework=framework,
                           evidence=frameworks.evidence_of(framework.id))


@bp.route("/frameworks/<int:framework_id>/export")
@allow(*OFFICERS)
def framework_export(framework_id: int):
    framework = frameworks.get_framework(framework_id, current_user.organisation_id)
    part = request.args.get("part", "framework")
    if part not in ("framework", "evidence"):
        abort(400, "part must be framework or evidence.")
    body = (frameworks.export_framework_csv(framework) if part == "framework"
            else frameworks.export_evidence_csv(framework))
    record_audit("report.export", actor=current_user,
                 target=("competency_framework", framework.id),
                 details={"report": f"competency_framework_{part}", "format": "csv",
                          "filters": {}})
    db.session.commit()
    name = f"{framework.idnumber}{'-evidence' if part == 'evidence' else ''}.csv"
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _table(view: str):
    filters = matrix.clean_filters(request.args.to_dict())
    builder = matrix.people_table if view == "people" else matrix.matrix_table
    return builder(current_user.organisation_id, filters, utcnow())


@bp.route("/competencies")
@allow(*OFFICERS)
def competency_matrix():
    view = request.args.get("view", "groups")
    if view not in ("groups", "people"):
        abort(400, "view must be groups or people.")
    table = _table(view)
    rows = list(exports.iter_rows(table, limit=PAGE_ROWS + 1))
    record_audit("report.view", actor=current_user, target=("report", table.report),
                 details={"filters": table.filters})
    db.session.commit()
    return render_template(
        "reports/matrix.html", table=table, rows=rows[:PAGE_ROWS],
        more=len(rows) > PAGE_ROWS, view=view, filters=table.filters,
        choices=matrix.filter_choices(current_user.organisation_id),
        profile=matrix.PROFILE_COLUMNS, chart=_chart(table, rows) if view == "groups" else None)


def _chart(table, rows):
    from lms_plugin.reports.charts import matrix_chart

    return matrix_chart(table, rows[:PAGE_ROWS])


@bp.route("/competencies/export")
@allow(*OFFICERS)
def competency_export():
    view = request.args.get("view", "groups")
    if view not in ("groups", "people"):
        abort(400, "view must be groups or people.")
    fmt = exports.check_format(request.args.get("format"))
    return _stream_or_queue(_table(view), fmt)


def _stream_or_queue(table, fmt: str):
    """Audit the export, then stream it, or send to its background export's page."""
    queued = exports.request_export(table, fmt, actor=current_user)
    db.session.commit()
    if queued is not None:
        return redirect(url_for("reports.export_status", export_id=queued.id))
    return Response(stream_with_context(exports.chunks(table, fmt)),
                    mimetype=exports.MIMETYPES[fmt],
                    headers={"Content-Disposition":
                             f'attachment; filename="{exports.filename(table, fmt, utcnow())}"'})


@bp.route("/exports/<int:export_id>")
@allow(*OFFICERS)
def export_status(export_id: int):
    export = exports.get_export(export_id, current_user.organisation_id)
    return render_template("reports/export.html", export=export,
                           done=exports.rows_done(export))


@bp.route("/exports/<int:export_id>/download")
@allow(*OFFICERS)
def export_download(export_id: int):
    export = exports.get_export(export_id, current_user.organisation_id)
    path = exports.export_path(export)
    if export.status != "done" or not path.exists():
        abort(409, "This export is not ready yet; its page shows the progress.")
    record_audit("report.download", actor=current_user, target=("report_export", export.id),
                 details={"report": export.report, "format": export.format,
                          "filters": export.filters})
    db.session.commit()
    return send_file(path, mimetype=exports.MIMETYPES[export.format], as_attachment=True,
                     download_name=f"{export.report}-{export.id}.{export.format}")


AUTHORS = ("author", "officer", "admin")


@bp.route("/items")
@allow(*AUTHORS)
def item_modules():
    from lms_plugin.learning.services import organisation_modules

    return render_template("reports/item_modules.html",
                           modules=organisation_modules(current_user.organisation_id))


def _item_version(slug: str):
    module, versions = items.module_versions(current_user.organisation_id, slug)
    wanted = request.args.get("version")
    if not wanted:
        if not versions:
            abort(404, "This module has no versions yet.")
        return module, versions, versions[0]
    if not wanted.isdigit():
        raise ValidationFailed("Choose a version from the list.", field="version")
    version = next((v for v in versions if v.number == int(wanted)), None)
    if version is None:
        abort(404, f"This module has no version {int(wanted)}.")
    return module, versions, version


@bp.route("/items/<slug>")
@allow(*AUTHORS)
def item_analysis(slug: str):
    module, versions, version = _item_version(slug)
    stats = items.item_analysis(version)
    filters = {"module": slug, "version": str(version.number)}
    record_audit("report.view", actor=current_user, target=("report", "item_analysis"),
                 details={"filters": filters})
    db.session.commit()
    from lms_plugin.reports.charts import items_chart

    return render_template("reports/items.html", module=module, versions=versions,
                           version=version, stats=stats, headers=items.HEADERS,
                           rows=items.item_rows(stats), chart=items_chart(stats),
                           options_text=items.options_text)


@bp.route("/items/<slug>/export")
@allow(*AUTHORS)
def item_export(slug: str):
    _, _, version = _item_version(slug)
    fmt = exports.check_format(request.args.get("format"))
    table = items.item_table(version, {"module": slug, "version": str(version.number)})
    exports.request_export(table, fmt, actor=current_user)
    db.session.commit()
    return Response(stream_with_context(exports.chunks(table, fmt)),
                    mimetype=exports.MIMETYPES[fmt],
                    headers={"Content-Disposition": 'attachment; filename="'
                             f'items-{slug}-v{version.number}.{fmt}"'})


@bp.route("/completions")
@allow(*OFFICERS)
def completions():
    table = records.completions_table(current_user.organisation_id,
                                      records.clean_filters(request.args.to_dict()), utcnow())
    rows = list(exports.iter_rows(table, limit=PAGE_ROWS + 1))
    record_audit("report.view", actor=current_user, target=("report", table.report),
                 details={"filters": table.filters})
    db.session.commit()
    return render_template("reports/completions.html", table=table, rows=rows[:PAGE_ROWS],
                           more=len(rows) > PAGE_ROWS, filters=table.filters,
                           choices=matrix.filter_choices(current_user.organisation_id),
                           modules=records.module_choices(current_user.organisation_id),
                           profile=matrix.PROFILE_COLUMNS)


@bp.route("/completions/export")
@allow(*OFFICERS)
def completions_export():
    fmt = exports.check_format(request.args.get("format"))
    table = records.completions_table(current_user.organisation_id,
                                      records.clean_filters(request.args.to_dict()), utcnow())
    return _stream_or_queue(table, fmt)
