"""Authoring pages (``/author/…``): modules, drafts, lessons, questions, publishing, diffs,
clinical systems, and content/bank import and export, for the organisation's authors and
admins.

Thin views: parse the form, make one ``catalog.authoring`` call, commit once, render. Bad
input re-renders the form with the validator's message on the field (422) and nothing is
written; a stale form re-renders with the conflict (409) and the author's input kept.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from lms_plugin.authz import allow
from lms_plugin.catalog import authoring, services, signoff
from lms_plugin.catalog.forms import (
    METADATA_FIELDS,
    QUESTION_FIELDS,
    BankForm,
    ImageForm,
    LessonForm,
    LockedForm,
    MetadataForm,
    MoveForm,
    NewModuleForm,
    OpenDraftForm,
    PlainForm,
    PublishForm,
    QuestionForm,
    RetireForm,
    SystemForm,
    ZipImportForm,
    attach_problems,
)
from lms_plugin.catalog.models import ITEM_TYPES, ModuleVersion
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db
from lms_plugin.markdown import render_markdown

bp = Blueprint("authoring", __name__, template_folder="templates", url_prefix="/author")

AUTHORS = ("author", "admin")
STATUSES = ("draft", "published", "retired")


@bp.app_template_filter("tojson_pretty")
def _tojson_pretty(value: Any) -> str:
    """A stored value as readable JSON text (escaped by the template like any text)."""
    import json

    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


@bp.app_template_filter("diff_line")
def _diff_line(line: str) -> str:
    """A unified-diff line for a trainer: "@@ -1,5 +1,6 @@" becomes "Lines 1 to 6"; "-"
    becomes "−" (a minus sign screen readers say)."""
    import re

    hunk = re.match(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", line)
    if hunk:
        start, count = int(hunk.group(1)), int(hunk.group(2) or 1)
        return f"Lines {start} to {start + max(count, 1) - 1}:"
    if line.startswith("-"):
        return "−" + line[1:]
    return line


def _module(slug: str):
    return services.get_module(current_user.organisation_id, slug)


def _draft(module) -> ModuleVersion:
    draft = authoring.draft_of(module)
    if draft is None:
        raise Conflict("This module has no draft. Start a new draft on the module page.")
    return draft


def _save(form: LockedForm, module, change, what: str, fields: dict[str, str],
          default: str, template: str, **context: Any):
    """Save through ``authoring.save_draft``; on a problem or a conflict re-render
    ``template`` with the form (422 / 409), nothing written."""
    draft = _draft(module)
    try:
        authoring.save_draft(draft, current_user, form.lock_value, change, what)
    except authoring.EditConflict as exc:
        db.session.rollback()
        form.lock.data = str(exc.lock_version)  # saving again applies on top of theirs
        return render_template(template, form=form, module=module, conflict=exc,
                               **context), 409
    except authoring.SpecProblems as exc:
        db.session.rollback()
        attach_problems(form, exc.problems, fields, default)
        return render_template(template, form=form, module=module, **context), 422
    except ValidationFailed as exc:
        db.session.rollback()
        getattr(form, exc.field or default).errors = [exc.message]
        return render_template(template, form=form, module=module, **context), 422
    db.session.commit()
    return None


# ------------------------------------------------------------------------------ modules

@bp.get("/modules")
@allow(*AUTHORS)
def module_list():
    q = request.args.get("q", "").strip()[:200]
    system = request.args.get("system", "").strip()[:64]
    audience = request.args.get("audience", "").strip()[:100]
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    rows = authoring.module_rows(current_user.organisation_id, q=q, system=system or None,
                                 audience=audience or None, status=status or None)
    waiting = {d.version.id: d.waiting
               for d in signoff.drafts(current_user.organisation_id)}
    return render_template("authoring/modules.html", rows=rows, q=q, system=system,
                           waiting=waiting,
                           audience=audience, status=status, statuses=STATUSES,
                           systems=services.list_systems(current_user.organisation_id))


@bp.route("/modules/new", methods=["GET", "POST"])
@allow(*AUTHORS)
def module_new():
    form = NewModuleForm()
    form.system_id.choices = [(s.id, s.name) for s in
                              services.list_systems(current_user.organisation_id)]
    if form.validate_on_submit():
        try:
            module = authoring.create_module(current_user.organisation_id, current_user,
                                             slug=form.slug.data, title=form.title.data,
                                             system_id=form.system_id.data)
        except authoring.SpecProblems as exc:
            db.session.rollback()
            attach_problems(form, exc.problems, {"title": "title", "slug": "slug"}, "title")
        except ValidationFailed as exc:
            db.session.rollback()
            getattr(form, exc.field or "title").errors = [exc.message]
        else:
            db.session.commit()
            flash("Module created. Add its lessons and questions, then publish it.", "info")
            return redirect(url_for("authoring.module_page", slug=module.slug))
    status = 422 if request.method == "POST" else 200
    return render_template("authoring/module_new.html", form=form), status


@bp.get("/modules/<slug>")
@allow(*AUTHORS)
def module_page(slug: str):
    return _render_module_page(_module(slug), RetireForm())


def _render_module_page(module, retire_form: RetireForm):
    draft = authoring.draft_of(module)
    latest = services.latest_version(module)
    versions = list(module.versions)
    return render_template(
        "authoring/module.html", module=module, draft=draft, latest=latest,
        versions=versions, status=authoring.module_status(versions),
        states=signoff.status(draft) if draft else [],
        open_form=OpenDraftForm(from_number=str(latest.number)) if latest else None,
        retire_form=retire_form, restore_form=PlainForm(), item_types=ITEM_TYPES)


@bp.post("/modules/<slug>/draft")
@allow(*AUTHORS)
def open_draft(slug: str):
    module = _module(slug)
    form = OpenDraftForm()
    if not form.validate_on_submit():
        raise ValidationFailed("Reload the module page and try again.", field="from_number")
    authoring.open_draft(module, current_user, int(form.from_number.data))
    db.session.commit()
    flash("A new draft was started from the newest version.", "info")
    return redirect(url_for("authoring.module_page", slug=slug))


@bp.route("/modules/<slug>/edit", methods=["GET", "POST"])
@allow(*AUTHORS)
def metadata(slug: str):
    module = _module(slug)
    draft = _draft(module)
    form = MetadataForm()
    if request.method == "GET":
        form.fill(authoring.draft_spec(draft))
        form.lock.data = str(draft.lock_version)
    elif form.validate_on_submit():
        failed = _save(form, module, form.apply, "details", METADATA_FIELDS, "title",
                       "authoring/metadata.html")
        if failed is None:
            flash("Details saved.", "info")
            return redirect(url_for("authoring.module_page", slug=slug))
        return failed
    status = 422 if request.method == "POST" else 200
    return render_template("authoring/metadata.html", form=form, module=module), status


# ------------------------------------------------------------------------------ lessons

def _entry_page(slug: str, index: int | None, kind: str, form: LockedForm,
                fill: Any, build: Any, template: str, fields: dict[str, str], default: str,
                context: dict[str, Any]):
    """The lesson and question editors: GET fills ``form`` (``fill(form, spec, index)``),
    POST saves ``build(form, spec)`` as entry ``index`` of the draft's ``kind`` list
    ("lessons"/"questions"; None: appended) through the validator."""
    module = _module(slug)
    draft = _draft(module)
    spec = authoring.draft_spec(draft)
    entries = getattr(spec, kind)
    if index is not None and not 1 <= index <= len(entries):
        raise NotFound(f"no such {kind[:-1]} in the draft")
    if request.method == "GET":
        form.lock.data = str(draft.lock_version)
        fill(form, spec, index)
    elif form.validate_on_submit():
        if "preview" in request.form:  # the same renderer and sanitizer learners get
            context["preview"] = render_markdown(form.body.data, module.id)
            return render_template(template, form=form, module=module, **context)
        entry = build(form, spec)

        def change(target):
            items = getattr(target, kind)
            if index is None:
                items.append(entry)
            elif index > len(items):
                raise NotFound(f"the {kind[:-1]} was deleted meanwhile")
            else:
                items[index - 1] = entry

        name = entry.slug if kind == "lessons" else entry.key
        failed = _save(form, module, change, f"{kind[:-1]} {name}", fields, default,
                       template, **context)
        if failed is None:
            flash(f"{kind[:-1].capitalize()} saved.", "info")
            return redirect(url_for("authoring.module_page", slug=slug))
        return failed
    status = 422 if request.method == "POST" else 200
    return render_template(template, form=form, module=module, **context), status


def _fill_lesson(form: LessonForm, spec, index: int | None) -> None:
    lesson = spec.lessons[index - 1] if index else None
    form.body.data = lesson.body_markdown if lesson else \
        "# New lesson title\n\nWrite the lesson here.\n"
    form.slug.data = lesson.slug if lesson else ""


def _lesson_page(slug: str, position: int | None):
    return _entry_page(
        slug, position, "lessons", LessonForm(), _fill_lesson,
        lambda form, spec: form.to_spec(position or len(spec.lessons) + 1),
        "authoring/lesson.html", {"body": "body", "slug": "slug"}, "body",
        {"position": position, "image_form": ImageForm(prefix="img"), "preview": None})


@bp.route("/modules/<slug>/lessons/new", methods=["GET", "POST"])
@allow(*AUTHORS)
def lesson_new(slug: str):
    return _lesson_page(slug, None)


@bp.route("/modules/<slug>/lessons/<int:position>", methods=["GET", "POST"])
@allow(*AUTHORS)
def lesson_edit(slug: str, position: int):
    return _lesson_page(slug, position)


def _reorder(slug: str, kind: str, index: int, delete: bool):
    """Move or delete lesson/question number ``index`` (1-based) of the draft."""
    module = _module(slug)
    form = MoveForm() if not delete else LockedForm()
    if not form.validate_on_submit():
        raise ValidationFailed("Reload the module page and try again.", field="lock")

    def change(target):
        items = target.lessons if kind == "lessons" else target.questions
        if not 1 <= index <= len(items):
            raise NotFound("no such entry in the draft")
        if delete:
            items.pop(index - 1)
            return
        other = index - 2 if form.direction.data == "up" else index
        if 0 <= other < len(items):
            items[index - 1], items[other] = items[other], items[index - 1]

    draft = _draft(module)
    try:
        authoring.save_draft(draft, current_user, form.lock_value, change,
                             f"{'delete' if delete else 'move'} {kind[:-1]} {index}")
    except authoring.EditConflict:
        db.session.rollback()
        raise Conflict("Someone else saved this draft meanwhile; nothing was changed. Check "
                       "the module page and try again.") from None
    db.session.commit()
    flash("Deleted." if delete else "Moved.", "info")
    return redirect(url_for("authoring.module_page", slug=slug))


@bp.post("/modules/<slug>/lessons/<int:position>/move")
@allow(*AUTHORS)
def lesson_move(slug: str, position: int):
    return _reorder(slug, "lessons", position, delete=False)


@bp.post("/modules/<slug>/lessons/<int:position>/delete")
@allow(*AUTHORS)
def lesson_delete(slug: str, position: int):
    return _reorder(slug, "lessons", position, delete=True)


@bp.post("/modules/<slug>/images")
@allow(*AUTHORS)
def image_upload(slug: str):
    """Store an image; the lesson editor shows the Markdown line to paste."""
    module = _module(slug)
    _draft(module)
    form = ImageForm(prefix="img")
    if not form.validate_on_submit():
        errors = [e for f in (form.image, form.alt) for e in f.errors] or ["Reload the page."]
        raise ValidationFailed(" ".join(errors), field="image")
    upload = form.image.data
    path = authoring.upload_image(module, current_user, upload.filename or "image",
                                  upload.read(authoring.MAX_UPLOAD_READ))
    db.session.commit()
    alt = form.alt.data.replace("]", "").replace("[", "")
    flash(f"Image uploaded. Paste this line into the lesson: ![{alt}]({path})", "info")
    back = request.form.get("back", "")
    return redirect(back if back.startswith(f"/author/modules/{slug}/") else
                    url_for("authoring.lesson_new", slug=slug))


# ---------------------------------------------------------------------------- questions

def _fill_question(form: QuestionForm, spec, index: int | None) -> None:
    if index is not None:
        form.fill(spec.questions[index - 1])
    else:
        wanted = request.args.get("type")
        form.type.data = wanted if wanted in ITEM_TYPES else "single_choice"


def _question_page(slug: str, index: int | None):
    return _entry_page(slug, index, "questions", QuestionForm(), _fill_question,
                       lambda form, spec: form.to_spec(), "authoring/question.html",
                       QUESTION_FIELDS, "prompt", {"index": index, "item_types": ITEM_TYPES})


@bp.route("/modules/<slug>/questions/new", methods=["GET", "POST"])
@allow(*AUTHORS)
def question_new(slug: str):
    return _question_page(slug, None)


@bp.route("/modules/<slug>/questions/<int:index>", methods=["GET", "POST"])
@allow(*AUTHORS)
def question_edit(slug: str, index: int):
    return _question_page(slug, index)


@bp.post("/modules/<slug>/questions/<int:index>/move")
@allow(*AUTHORS)
def question_move(slug: str, index: int):
    return _reorder(slug, "questions", index, delete=False)


@bp.post("/modules/<slug>/questions/<int:index>/delete")
@allow(*AUTHORS)
def question_delete(slug: str, index: int):
    return _reorder(slug, "questions", index, delete=True)


# --------------------------------------------------------------------------- publishing

@bp.route("/modules/<slug>/publish", methods=["GET", "POST"])
@allow(*AUTHORS)
def publish(slug: str):
    module = _module(slug)
    draft = _draft(module)
    form = PublishForm()
    problems: list = []
    if request.method == "GET":
        form.lock.data = str(draft.lock_version)
        # The notes and retraining choice the draft holds: they are part of what reviewers
        # approve (the content hash), so publishing them unchanged keeps the approvals.
        form.change_notes.data = draft.change_notes
        form.retraining_required.data = draft.retraining_required
        _, problems = authoring.validate_spec(authoring.draft_spec(draft))
    elif form.validate_on_submit():
        if form.lock_value != draft.lock_version:
            form.lock.data = str(draft.lock_version)
            form.change_notes.errors = ["The draft changed since you opened this page; "
                                        "check it (preview) and publish again."]
            return render_template("authoring/publish.html", form=form, module=module,
                                   draft=draft, problems=[]), 409
        if request.form.get("save_notes"):
            return _save_notes(module, draft, form)
        go_live = form.go_live_at.data
        try:
            authoring.publish_version(
                draft, current_user, change_notes=form.change_notes.data or "",
                retraining_required=bool(form.retraining_required.data),
                go_live_at=go_live.replace(tzinfo=UTC)
                if go_live else None)
        except authoring.SpecProblems as exc:
            db.session.rollback()
            problems = exc.problems
        except services.SignoffMissing as exc:  # the gate (issue 17): nothing is written
            db.session.rollback()
            return render_template("authoring/publish.html", form=form, module=module,
                                   draft=draft, problems=[], waiting=exc.waiting), 409
        except ValidationFailed as exc:
            db.session.rollback()
            target = getattr(form, exc.field or "change_notes", None)
            if target is None:  # about the draft itself (field "version": a marker left)
                problems = [exc.message]
            else:
                target.errors = [exc.message]
        else:
            db.session.commit()
            flash(f"Version {draft.number} is published.", "info")
            return redirect(url_for("authoring.module_page", slug=slug))
    status = 422 if request.method == "POST" else 200
    return render_template("authoring/publish.html", form=form, module=module, draft=draft,
                           problems=problems), status


def _save_notes(module, draft: ModuleVersion, form: PublishForm):
    """Store the publish form's notes and retraining choice in the draft without publishing
    (audited ``version.update``), so reviewers can approve the exact version that will be
    published: both are part of its content hash (issue 17's gate)."""
    notes = (form.change_notes.data or "").strip()
    if not notes:
        form.change_notes.errors = ["Say what changed: learners and trainers read these notes."]
        return render_template("authoring/publish.html", form=form, module=module,
                               draft=draft, problems=[]), 422
    retrain = bool(form.retraining_required.data)

    def change(spec) -> None:
        spec.change_notes, spec.retraining_required = notes, retrain

    try:
        authoring.save_draft(draft, current_user, form.lock_value, change, "change notes")
    except authoring.SpecProblems as exc:
        db.session.rollback()
        return render_template("authoring/publish.html", form=form, module=module,
                               draft=draft, problems=exc.problems), 422
    db.session.commit()
    flash("The notes are saved with the draft. Once every reviewer has approved this "
          "version, publish it with these notes.", "info")
    return redirect(url_for("authoring.publish", slug=module.slug))


@bp.post("/modules/<slug>/retire")
@allow(*AUTHORS)
def retire(slug: str):
    module = _module(slug)
    form = RetireForm()
    if form.validate_on_submit():
        try:
            authoring.retire_module(module, current_user, form.reason.data or "")
        except ValidationFailed as exc:
            db.session.rollback()
            form.reason.errors = [exc.message]
        else:
            db.session.commit()
            flash("The module is retired: learners no longer see it.", "info")
            return redirect(url_for("authoring.module_page", slug=slug))
    return _render_module_page(module, form), 422


@bp.post("/modules/<slug>/restore")
@allow(*AUTHORS)
def restore(slug: str):
    module = _module(slug)
    if not PlainForm().validate_on_submit():
        raise ValidationFailed("Reload the page and try again.")
    number = authoring.restore_module(module, current_user)
    db.session.commit()
    flash(f"Version {number} is published again.", "info")
    return redirect(url_for("authoring.module_page", slug=slug))


@bp.get("/modules/<slug>/diff")
@allow(*AUTHORS)
def diff(slug: str):
    module = _module(slug)
    versions = list(module.versions)
    numbers = [v.number for v in versions]
    try:
        old = int(request.args.get("old") or (numbers[-2] if len(numbers) > 1 else numbers[0]))
        new = int(request.args.get("new") or numbers[-1])
    except (ValueError, IndexError):
        raise ValidationFailed("Choose two version numbers of this module.",
                               field="old") from None
    result = authoring.diff_versions(authoring.get_version(module, old),
                                     authoring.get_version(module, new))
    return render_template("authoring/diff.html", module=module, d=result, versions=versions)


# ---------------------------------------------------------------------- import / export

@bp.get("/modules/<slug>/export.zip")
@allow(*AUTHORS)
def export_zip(slug: str):
    module = _module(slug)
    name, data = authoring.export_zip(module, current_user)
    db.session.commit()  # the audit entry
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/import", methods=["GET", "POST"])
@allow(*AUTHORS)
def import_zip():
    form = ZipImportForm()
    problems: list = []
    summary = None
    if form.validate_on_submit():
        try:
            summary = authoring.import_zip(current_user.organisation, current_user,
                                           form.archive.data.read(authoring.MAX_UPLOAD_READ))
        except authoring.SpecProblems as exc:
            db.session.rollback()
            problems = exc.problems
            form.archive.errors = [f"The content has {len(problems)} problem(s); nothing "
                                   "was imported."]
        except ValidationFailed as exc:
            db.session.rollback()
            form.archive.errors = [exc.message]
        else:
            db.session.commit()
    status = 422 if request.method == "POST" and summary is None else 200
    return render_template("authoring/import.html", form=form, problems=problems,
                           summary=summary), status


@bp.route("/modules/<slug>/bank", methods=["GET", "POST"])
@allow(*AUTHORS)
def bank(slug: str):
    module = _module(slug)
    draft = _draft(module)
    form = BankForm()
    report = None
    if request.method == "GET":
        form.lock.data = str(draft.lock_version)
    elif form.validate_on_submit():
        upload = form.bank.data
        try:
            report = authoring.import_bank(draft, current_user, form.lock_value,
                                           upload.filename or "",
                                           upload.read(authoring.MAX_UPLOAD_READ))
        except authoring.EditConflict as exc:
            db.session.rollback()
            form.lock.data = str(exc.lock_version)
            form.bank.errors = ["Someone else saved this draft meanwhile; nothing was "
                                "imported. Upload the file again."]
            return render_template("authoring/bank.html", form=form, module=module,
                                   report=None, problems=[]), 409
        except authoring.SpecProblems as exc:
            db.session.rollback()
            form.bank.errors = ["The imported questions break the module's rules; nothing "
                                "was imported."]
            return render_template("authoring/bank.html", form=form, module=module,
                                   report=None, problems=exc.problems), 422
        except ValidationFailed as exc:
            db.session.rollback()
            form.bank.errors = [exc.message]
        else:
            db.session.commit()
            form.lock.data = str(draft.lock_version)
    status = 422 if request.method == "POST" and report is None else 200
    return render_template("authoring/bank.html", form=form, module=module, report=report,
                           problems=[]), status


# ------------------------------------------------------------------------------ systems

@bp.get("/systems")
@allow(*AUTHORS)
def system_list():
    return render_template("authoring/systems.html",
                           systems=services.list_systems(current_user.organisation_id))


def _system_page(system_id: int | None):
    system = authoring.get_system(current_user.organisation_id, system_id) \
        if system_id is not None else None
    form = SystemForm(obj=system) if request.method == "GET" else SystemForm()
    if form.validate_on_submit():
        try:
            authoring.save_system(current_user.organisation_id, current_user,
                                  name=form.name.data, vendor=form.vendor.data,
                                  description=form.description.data, system_id=system_id,
                                  slug=form.slug.data if system_id is None else None)
        except ValidationFailed as exc:
            db.session.rollback()
            getattr(form, exc.field or "name").errors = [exc.message]
        else:
            db.session.commit()
            flash("Clinical system saved.", "info")
            return redirect(url_for("authoring.system_list"))
    status = 422 if request.method == "POST" else 200
    return render_template("authoring/system.html", form=form, system=system), status


@bp.route("/systems/new", methods=["GET", "POST"])
@allow(*AUTHORS)
def system_new():
    return _system_page(None)


@bp.route("/systems/<int:system_id>", methods=["GET", "POST"])
@allow(*AUTHORS)
def system_edit(system_id: int):
    return _system_page(system_id)
