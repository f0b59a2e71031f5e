"""CE pages: the disclosure page, evaluation, claim, certificate download, transcript, the
public verification page and the author's activity page. Thin: read the request, call one
service, render (rules in ``credits.services``)."""

from __future__ import annotations

import csv
import io
from datetime import date

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lms_plugin.authz import PUBLIC, allow
from lms_plugin.catalog.models import Module, ModuleVersion
from lms_plugin.credits import exports, services
from lms_plugin.credits.forms import (
    ActivityForm,
    ClaimForm,
    CorrectionForm,
    CsrfOnlyForm,
    choices,
)
from lms_plugin.credits.models import PROFESSIONS
from lms_plugin.credits.pdf import credits_text, transcript_pdf
from lms_plugin.credits.spec import parse_credit_text, spec_to_yaml
from lms_plugin.db import utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db

bp = Blueprint("credits", __name__, template_folder="templates")

LEARNERS = ("learner", "author", "officer", "admin")


def _verify_url(code: str) -> str:
    return url_for("credits.verify", code=code, _external=True)


def _latest_version(module_id: int) -> ModuleVersion | None:
    return db.session.scalar(
        select(ModuleVersion).where(ModuleVersion.module_id == module_id,
                                    ModuleVersion.status == "published")
        .order_by(ModuleVersion.number.desc()).limit(1))


@bp.get("/credits/<slug>")
@allow(*LEARNERS)
def disclosure(slug: str):
    activity, module = services.activity_for_slug(current_user.organisation_id, slug)
    state = services.claim_state(activity, current_user, utcnow())
    return render_template("credits/disclosure.html", a=activity, module=module, s=state,
                           version=_latest_version(module.id),
                           offers=list(services.offered_types(activity)),
                           credits_text=credits_text, label=services.credit_label)


@bp.route("/credits/<slug>/evaluation", methods=["GET", "POST"])
@allow(*LEARNERS)
def evaluation(slug: str):
    activity, module = services.activity_for_slug(current_user.organisation_id, slug)
    form = CsrfOnlyForm()
    error = field = None
    status = 200
    if form.validate_on_submit():
        answers = {q.id: request.form.get(f"q{q.id}", "") for q in activity.questions}
        try:
            services.submit_evaluation(activity, current_user, answers, utcnow())
            db.session.commit()
        except (ValidationFailed, Conflict) as exc:
            db.session.rollback()
            error, field, status = exc.message, exc.field, exc.status_code
        except IntegrityError:  # a second tab submitted at the same moment
            db.session.rollback()
            error, status = "You have already submitted the evaluation of this activity.", 409
        else:
            return redirect(url_for("credits.claim", slug=slug))
    elif request.method == "POST":
        error, status = "The form expired; please submit it again.", 400
    done = services.claim_state(activity, current_user, utcnow()).evaluated
    return render_template("credits/evaluation.html", a=activity, module=module, form=form,
                           done=done,
                           error=error, field=field, likert=services.LIKERT,
                           change=services.CHANGE_ANSWERS, values=request.form), status


@bp.route("/credits/<slug>/claim", methods=["GET", "POST"])
@allow(*LEARNERS)
def claim(slug: str):
    activity, module = services.activity_for_slug(current_user.organisation_id, slug)
    form = ClaimForm()
    form.credit_type.choices = choices([("", "Choose…")] + [
        (code, f"{label} (up to {credits_text(maximum)})")
        for code, label, maximum in services.offered_types(activity)])
    state = services.claim_state(activity, current_user, utcnow())
    if request.method == "GET" and state.profile is not None:
        form.profession.data = state.profile.profession
    message = None
    status = 200
    if form.validate_on_submit():
        req = services.ClaimRequest(
            credit_type=form.credit_type.data or "", credits=form.credits.data or "",
            profession=form.profession.data or "", npi=form.npi.data or "",
            licence_state=form.licence_state.data or "",
            licence_number=form.licence_number.data or "",
            nabp_eprofile_id=form.nabp_eprofile_id.data or "",
            birth_month=form.birth_month.data or "", birth_day=form.birth_day.data or "",
            consent=bool(form.consent.data))
        try:
            made = services.claim_credit(activity, current_user, req, utcnow(), _verify_url)
            code = made.certificate.code
            db.session.commit()
        except IntegrityError:  # the same claim from a second tab at the same moment
            db.session.rollback()
            status, message = 409, ("You have already claimed this credit type for this "
                                    "activity.")
        except ValidationFailed as exc:
            db.session.rollback()
            status = 422
            target = getattr(form, exc.field or "", None)
            if target is not None:
                target.errors = [exc.message]
            else:
                message = exc.message
        except Conflict as exc:
            db.session.rollback()
            status, message = 409, exc.message
        else:
            return redirect(url_for("credits.certificate", code=code))
    elif request.method == "POST":
        status, message = 400, "The form expired; please submit it again."
    return render_template("credits/claim.html", a=activity, module=module, form=form,
                           s=state, message=message), status


@bp.get("/credits/certificates/<code>")
@allow(*LEARNERS)
def certificate(code: str):
    cert = services.learner_certificate(current_user, code)
    return _certificate_page(cert, CorrectionForm(), None, 200)


def _certificate_page(cert, form, message, status):
    staff = bool(current_user.role_names & {"officer", "admin"})
    return render_template("credits/certificate.html", c=cert, claim=cert.claim,
                           label=services.credit_label(cert.claim.credit_type,
                                                       cert.claim.activity),
                           credits_text=credits_text, form=form if staff else None,
                           message=message), status


@bp.post("/officer/credits/certificates/<code>/correct")
@allow("officer", "admin")
def correct(code: str):
    cert = services.learner_certificate(current_user, code)
    form = CorrectionForm()
    if not form.validate_on_submit():
        return _certificate_page(cert, form, "The form expired; please submit it again.", 400)
    try:
        new = services.revoke_and_reissue(current_user.organisation_id, cert.claim_id,
                                          current_user, form.reason.data or "",
                                          form.credits.data or None, utcnow(), _verify_url)
    except ValidationFailed as exc:
        db.session.rollback()
        getattr(form, exc.field or "reason").errors = [exc.message]
        return _certificate_page(cert, form, None, 422)
    except Conflict as exc:
        db.session.rollback()
        return _certificate_page(cert, form, exc.message, 409)
    db.session.commit()
    return redirect(url_for("credits.certificate",
                            code=new.certificate.code if new else cert.code))


@bp.get("/credits/certificates/<code>.pdf")
@allow(*LEARNERS)
def certificate_pdf(code: str):
    cert = services.learner_certificate(current_user, code)
    return Response(cert.pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="ce-certificate-{cert.code}.pdf"',
        "ETag": f'"{cert.sha256}"'})


@bp.get("/verify/<code>")
@allow(PUBLIC)
def verify(code: str):
    result = services.verify(code)
    return render_template("credits/verify.html", v=result, code=code.upper(),
                           credits_text=credits_text)


def _cycle_end() -> date:
    raw = request.args.get("cycle_end", "")
    if not raw:
        return services.local_today(current_user.organisation.timezone, utcnow())
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("The cycle end must be a date written YYYY-MM-DD.",
                               field="cycle_end") from None


@bp.get("/credits/transcript")
@allow(*LEARNERS)
def transcript():
    end = _cycle_end()
    claims, totals = services.transcript(current_user.id, end)
    fmt = request.args.get("format", "html")
    if fmt == "pdf":
        pdf = transcript_pdf(current_user.name or current_user.email or "", claims, totals,
                             services.local_today(current_user.organisation.timezone,
                                                  utcnow()))
        return Response(pdf, mimetype="application/pdf", headers={
            "Content-Disposition": 'attachment; filename="ce-transcript.pdf"'})
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["completed_on", "activity", "credit_type", "credits",
                         "certificate_code"])
        for c in claims:
            writer.writerow([c.completed_on.isoformat(), _safe_cell(c.activity.title),
                             services.credit_label(c.credit_type, c.activity),
                             credits_text(c.credits),
                             c.certificate.code if c.certificate else ""])
        return Response(out.getvalue(), mimetype="text/csv", headers={
            "Content-Disposition": 'attachment; filename="ce-transcript.csv"'})
    if fmt != "html":
        raise NotFound("Transcripts come as html, pdf or csv.")
    return render_template("credits/transcript.html", claims=claims, totals=totals,
                           cycle_end=end, credits_text=credits_text,
                           label=services.credit_label)


def _safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas in exported text (OWASP "CSV Injection")."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.route("/author/credits/<slug>", methods=["GET", "POST"])
@allow("author", "admin")
def edit_activity(slug: str):
    module = db.session.scalar(select(Module).where(
        Module.organisation_id == current_user.organisation_id, Module.slug == slug))
    if module is None:
        raise NotFound("There is no such module.")
    activity = services.activity_for_module(current_user.organisation_id, module.id)
    form = ActivityForm()
    problems = []
    status = 200
    if form.validate_on_submit():
        spec, problems = parse_credit_text(form.spec.data or "", f"{slug}/credit")
        if spec is not None:
            activity = services.save_activity(current_user.organisation_id, module.id, spec,
                                              current_user)
            db.session.commit()
            return redirect(url_for("credits.edit_activity", slug=slug, saved=1))
        status = 422
    elif request.method == "POST":
        status = 400
    elif activity is not None:
        form.spec.data = spec_to_yaml(activity)
    today = services.local_today(current_user.organisation.timezone, utcnow())
    return render_template("credits/edit_activity.html", module=module, activity=activity,
                           form=form, problems=problems,
                           review_due=services.review_due(activity, today) if activity
                           else None, today=today, professions=PROFESSIONS,
                           summary=services.evaluation_summary(activity) if activity else [],
                           saved=request.args.get("saved")), status


def _export_range() -> tuple[date, date]:
    today = services.local_today(current_user.organisation.timezone, utcnow())
    return exports.check_range(request.args.get("start") or f"{today:%Y-01-01}",
                               request.args.get("end") or today.isoformat())


@bp.get("/officer/credits/exports")
@allow("officer", "admin")
def registry_exports():
    try:
        first, last = _export_range()
    except ValidationFailed as exc:
        return render_template("credits/exports.html", error=exc, rows=None,
                               start=request.args.get("start", ""),
                               end=request.args.get("end", "")), 422
    rows = exports.summary(current_user.organisation_id, first, last)
    return render_template("credits/exports.html", error=None, rows=rows,
                           start=first.isoformat(), end=last.isoformat())


@bp.get("/officer/credits/exports/<registry>.csv")
@allow("officer", "admin")
def registry_export_csv(registry: str):
    first, last = _export_range()
    organisation_id = current_user.organisation_id
    exports.record_export(organisation_id, registry, first, last, current_user)
    db.session.commit()  # the audit record, before the file streams
    app = current_app._get_current_object()

    def body():
        # Its own application context (and so its own database session): the rows stream
        # after this request has ended.
        with app.app_context():
            yield from exports.stream_csv(organisation_id, registry, first, last)

    return Response(body(), mimetype="text/csv", headers={
        "Content-Disposition":
            f'attachment; filename="{registry}-{first:%Y%m%d}-{last:%Y%m%d}.csv"'})
