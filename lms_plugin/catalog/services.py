"""Catalog rules: finding modules, and importing content files as immutable versions.

Services take plain values, ``flush()`` and never commit: the CLI command or view commits once,
so an import is one transaction and a failure anywhere leaves the database as it was.

Versioning rules for an import (per module, comparing the file with the newest version):

- same content hash and same status (or the file says ``draft`` for content that is already
  published): unchanged, nothing is written;
- the newest version is a draft: the draft is replaced in place (drafts are working copies);
  if the file says ``published`` the draft becomes the published version;
- otherwise: a new version numbered newest + 1 with the file's status. Published versions are
  never edited, and publishing a new version does not touch earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select

from lms_plugin import events
from lms_plugin.accounts.models import Organisation, User
from lms_plugin.accounts.services import record_audit
from lms_plugin.catalog import signoff
from lms_plugin.catalog.content_format import (  # noqa: F401  (publish_problems re-exported)
    AssetSpec,
    ContentBundle,
    LessonSpec,
    ModuleSpec,
    QuestionSpec,
    SystemSpec,
    publish_problems,
)
from lms_plugin.catalog.models import (
    ClinicalSystem,
    ContentAsset,
    Lesson,
    Module,
    ModuleVersion,
    Question,
    live_version,
)
from lms_plugin.db import utcnow
from lms_plugin.errors import Conflict, NotFound, ValidationFailed
from lms_plugin.extensions import db

# ------------------------------------------------------------------------------ queries


def get_module(organisation_id: int, slug: str) -> Module:
    """The organisation's module with this slug; NotFound (404) otherwise, also for another
    organisation's module so ids and slugs reveal nothing across tenants."""
    module = db.session.scalar(
        select(Module).where(Module.organisation_id == organisation_id, Module.slug == slug)
    )
    if module is None:
        raise NotFound(f"no module '{slug}' in your organisation")
    return module


def get_module_by_id(organisation_id: int, module_id: int) -> Module:
    module = db.session.get(Module, module_id)
    if module is None or module.organisation_id != organisation_id:
        raise NotFound("no such module in your organisation")
    return module


def current_version(module: Module) -> ModuleVersion | None:
    """The newest published version that has gone live: what learners take (drafts,
    retired ones and versions waiting for their go-live time are not)."""
    return db.session.scalar(
        select(ModuleVersion)
        .where(ModuleVersion.module_id == module.id, live_version())
        .order_by(ModuleVersion.number.desc()).limit(1)
    )


def latest_version(module: Module) -> ModuleVersion | None:
    """The newest version in any status (authors and the exporter work on this one)."""
    return db.session.scalar(
        select(ModuleVersion).where(ModuleVersion.module_id == module.id)
        .order_by(ModuleVersion.number.desc()).limit(1)
    )


def list_systems(organisation_id: int) -> list[ClinicalSystem]:
    return list(db.session.scalars(
        select(ClinicalSystem).where(ClinicalSystem.organisation_id == organisation_id)
        .order_by(ClinicalSystem.name, ClinicalSystem.id)
    ))


def list_modules(organisation_id: int, system: str | None = None, audience: str | None = None,
                 max_minutes: int | None = None, q: str | None = None, *,
                 include_unpublished: bool = False) -> list[Module]:
    """The modules of :func:`list_modules_with_versions` (same filters and order)."""
    return [module for module, _ in list_modules_with_versions(
        organisation_id, system, audience, max_minutes, q,
        include_unpublished=include_unpublished)]


def list_modules_with_versions(organisation_id: int, system: str | None = None,
                               audience: str | None = None, max_minutes: int | None = None,
                               q: str | None = None, *, include_unpublished: bool = False
                               ) -> list[tuple[Module, ModuleVersion]]:
    """(module, version) of the organisation, filtered on the module's current published
    version (or, with ``include_unpublished``, its newest version of any status), ordered by
    title; one statement whatever the number of modules.

    ``system`` is a system slug; ``audience`` a job role the version lists; ``max_minutes``
    an upper bound on estimated minutes; ``q`` a case-insensitive search of slug, title and
    summary. Modules with no matching version are left out.
    """
    newest = (
        select(ModuleVersion.module_id, func.max(ModuleVersion.number).label("number"))
        .join(Module, Module.id == ModuleVersion.module_id)
        .where(Module.organisation_id == organisation_id)
    )
    if not include_unpublished:
        newest = newest.where(live_version())
    newest = newest.group_by(ModuleVersion.module_id).subquery()
    stmt = (
        select(Module, ModuleVersion)
        .join(newest, newest.c.module_id == Module.id)
        .join(ModuleVersion, (ModuleVersion.module_id == Module.id)
              & (ModuleVersion.number == newest.c.number))
        .where(Module.organisation_id == organisation_id)
    )
    if system:
        stmt = stmt.join(ClinicalSystem, ClinicalSystem.id == Module.system_id) \
            .where(ClinicalSystem.slug == system)
    if max_minutes is not None:
        stmt = stmt.where(ModuleVersion.estimated_minutes <= max_minutes)
    if q and q.strip():
        term = q.strip().lower()  # searched literally: % and _ are no wildcards
        stmt = stmt.where(or_(func.lower(ModuleVersion.title).contains(term, autoescape=True),
                              func.lower(ModuleVersion.summary).contains(term, autoescape=True),
                              Module.slug.contains(term, autoescape=True)))
    rows = db.session.execute(stmt).all()
    if audience:
        wanted = audience.strip().lower()
        rows = [r for r in rows if wanted in (a.lower() for a in r[1].audience or [])]
    rows.sort(key=lambda r: (r[1].title.lower(), r[0].id))
    return [(module, version) for module, version in rows]


def get_asset(organisation_id: int, module_id: int, path: str,
              sha256: str | None = None) -> ContentAsset:
    """An image of the organisation's module; the most recently imported one for the path
    (the one the newest version uses) unless a sha256 pins an exact file."""
    get_module_by_id(organisation_id, module_id)
    stmt = select(ContentAsset).where(ContentAsset.module_id == module_id,
                                      ContentAsset.path == path)
    if sha256:
        stmt = stmt.where(ContentAsset.sha256 == sha256)
    asset = db.session.scalar(
        stmt.order_by(ContentAsset.created_at.desc(), ContentAsset.id.desc()).limit(1)
    )
    if asset is None:
        raise NotFound("no such image in this module")
    return asset


# ------------------------------------------------------------------------------- import

CREATED, NEW_VERSION, DRAFT_REPLACED, UNCHANGED = ("created", "new version", "draft replaced",
                                                   "unchanged")
PENDING = "pending"  # internal: a draft with the file's content, to be published if approved
#: ``keep_existing`` (setup's shipped content): a module the organisation has is left alone.
KEPT = "kept"


class SignoffMissing(Conflict):
    """The sign-off gate refused a publish (409, issue 17): ``waiting`` holds the label of
    each reviewer still to approve this exact version ("pharmacist", "Dr Ana Ruiz (medical
    director)"), so a page can list them."""

    def __init__(self, message: str, waiting: list[str]) -> None:
        super().__init__(message)
        self.waiting = waiting


@dataclass
class ModuleOutcome:
    slug: str
    outcome: str  # CREATED | NEW_VERSION | DRAFT_REPLACED | UNCHANGED | KEPT
    number: int
    status: str
    # The file asked to publish, but these required reviewers have not approved this exact
    # version yet: it stays a draft (``publish_version``).
    awaiting: list[str] = field(default_factory=list)


@dataclass
class ImportSummary:
    organisation_id: int
    modules: list[ModuleOutcome] = field(default_factory=list)
    systems_created: list[str] = field(default_factory=list)
    systems_updated: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for m in self.modules if m.outcome == outcome)

    @property
    def awaiting_signoff(self) -> list[ModuleOutcome]:
        """Modules left as drafts: not to be published (``publish=False``) or awaiting
        sign-off."""
        return [m for m in self.modules if m.status == "draft"]

    def line(self) -> str:
        return (f"{len(self.modules)} modules: {self.count(CREATED)} created, "
                f"{self.count(NEW_VERSION)} new version, {self.count(DRAFT_REPLACED)} draft "
                f"replaced, {self.count(UNCHANGED)} unchanged"
                + (f", {self.count(KEPT)} kept as they are" if self.count(KEPT) else "")
                + "; systems: "
                f"{len(self.systems_created)} created, {len(self.systems_updated)} updated")


def import_content(bundle: ContentBundle, organisation: Organisation, *,
                   actor: User | None = None,
                   progress: Callable[[ModuleOutcome], None] | None = None,
                   publish: bool = True, local_markers_ok: bool = False,
                   keep_existing: bool = False) -> ImportSummary:
    """Store a validated bundle in the organisation (flushes; the caller commits once).

    ``publish``: True = a file that says ``status: published`` is published through
    :func:`publish_version` (the sign-off gate: a module whose required reviewers have not
    all approved the exact content stays a draft, listed in ``ModuleOutcome.awaiting``);
    False = every module is stored as a draft whatever its file says (the shipped starter
    content in a real organisation: it awaits the hospital's own sign-off, issue 17).

    Refuses a bundle with problems: validation always comes first and nothing is written.
    A file with unresolved ``[[local: …]]`` markers is refused when it would be published
    (``content_format.publish_problems``), unless ``local_markers_ok`` (a demo organisation:
    learners see the suggested wording, never the brackets).

    ``keep_existing``: only modules the organisation does not have yet are stored; the
    others are left exactly as they are (outcome ``KEPT`` when they differ from the file).
    ``lms-plugin setup`` (run by every ``make run``) imports the shipped content so, because
    the hospital edits those drafts, has them approved and publishes them: the shipped
    wording must not come back.
    """
    if bundle.problems:
        raise ValidationFailed(f"the content has {len(bundle.problems)} problems; run "
                               "'lms-plugin content validate' to see them")
    if publish and not local_markers_ok:
        blocked = publish_problems([m for m in bundle.modules if m.status == "published"])
        if blocked:
            raise ValidationFailed(
                "cannot publish: " + "; ".join(str(p) for p in blocked[:20])
                + ("" if len(blocked) <= 20 else f" (and {len(blocked) - 20} more)"))
    summary = ImportSummary(organisation_id=organisation.id)
    systems = {s.slug: s for s in db.session.scalars(
        select(ClinicalSystem).where(ClinicalSystem.organisation_id == organisation.id))}
    for spec in bundle.systems:
        _upsert_system(organisation.id, spec, systems, summary)
    for spec in bundle.modules:
        if spec.system not in systems:
            raise ValidationFailed(f"module {spec.slug}: unknown system '{spec.system}'")
        outcome = import_module(organisation.id, spec, systems[spec.system], actor=actor,
                                publish=publish, local_markers_ok=local_markers_ok,
                                keep_existing=keep_existing)
        summary.modules.append(outcome)
        if spec.credit is not None:  # credits (layer 6) stores the CE activity
            module_id = db.session.scalar(select(Module.id).where(
                Module.organisation_id == organisation.id, Module.slug == spec.slug))
            events.announce(events.module_imported, events.ModuleImported(
                organisation.id, module_id, spec.credit, actor.id if actor else None))
        if progress is not None:
            progress(outcome)
    record_audit("content.import", actor=actor, organisation_id=organisation.id,
                 target=("organisation", organisation.id),
                 details={"summary": summary.line(),
                          "modules": {m.slug: f"{m.outcome} v{m.number} ({m.status})"
                                      for m in summary.modules if m.outcome != UNCHANGED}})
    return summary


def _upsert_system(organisation_id: int, spec: SystemSpec, systems: dict[str, ClinicalSystem],
                   summary: ImportSummary) -> None:
    system = systems.get(spec.slug)
    if system is None:
        system = ClinicalSystem(organisation_id=organisation_id, slug=spec.slug, name=spec.name,
                                vendor=spec.vendor, description=spec.description)
        db.session.add(system)
        systems[spec.slug] = system
        summary.systems_created.append(spec.slug)
    elif (system.name, system.vendor, system.description) != \
            (spec.name, spec.vendor, spec.description):
        system.name, system.vendor, system.description = spec.name, spec.vendor, spec.description
        summary.systems_updated.append(spec.slug)
    db.session.flush()


def import_module(organisation_id: int, spec: ModuleSpec, system: ClinicalSystem, *,
                  actor: User | None = None, publish: bool = True,
                  local_markers_ok: bool = False,
                  keep_existing: bool = False) -> ModuleOutcome:
    """Apply the versioning rules (module docstring) to one module. The version is written
    as a draft; when the file says ``published`` (and ``publish``), :func:`publish_version`
    then publishes it if every required reviewer approved that content. ``keep_existing``:
    a module the organisation already has is not touched (``KEPT`` when it differs)."""
    if keep_existing:
        existing = db.session.scalar(select(Module).where(
            Module.organisation_id == organisation_id, Module.slug == spec.slug))
        latest = latest_version(existing) if existing is not None else None
        if latest is not None:
            same = latest.content_hash == spec.content_hash()
            return ModuleOutcome(spec.slug, UNCHANGED if same else KEPT, latest.number,
                                 latest.status)
    want_published = publish and spec.status == "published"
    outcome = _store_module(organisation_id, spec, system, want_published, actor)
    if outcome.outcome == UNCHANGED or not want_published or outcome.status != "draft":
        return outcome
    version = db.session.scalar(select(ModuleVersion).join(Module).where(
        Module.organisation_id == organisation_id, Module.slug == spec.slug,
        ModuleVersion.number == outcome.number))
    waiting = signoff.missing(version)
    if waiting:
        outcome.awaiting = waiting
        if outcome.outcome == PENDING:  # the same draft, still awaiting sign-off
            outcome.outcome = UNCHANGED
        return outcome
    publish_version(organisation_id, version.id, actor=actor,
                    local_markers_ok=local_markers_ok)
    if outcome.outcome == PENDING:  # the approved draft becomes the published version
        outcome.outcome = NEW_VERSION
    outcome.status = version.status
    return outcome


def _store_module(organisation_id: int, spec: ModuleSpec, system: ClinicalSystem,
                  want_published: bool, actor: User | None) -> ModuleOutcome:
    status = "published" if want_published else "draft"
    content_hash = spec.content_hash()
    module = db.session.scalar(select(Module).where(Module.organisation_id == organisation_id,
                                                    Module.slug == spec.slug))
    if module is None:
        module = Module(organisation_id=organisation_id, slug=spec.slug, system_id=system.id)
        db.session.add(module)
        db.session.flush()
        version = _fill_version(ModuleVersion(module_id=module.id, number=1), spec,
                                content_hash)
        _store_assets(module.id, spec.assets)
        return ModuleOutcome(spec.slug, CREATED, version.number, version.status)

    latest = latest_version(module)
    if latest is not None and latest.content_hash == content_hash and (
            latest.status == status or (latest.status != "draft" and status == "draft")):
        return ModuleOutcome(spec.slug, UNCHANGED, latest.number, latest.status)
    if latest is not None and latest.content_hash == content_hash and want_published:
        # The draft already holds this content: keep it (and its approvals); publish_version
        # decides. Rewriting it would change nothing but the rows.
        return ModuleOutcome(spec.slug, PENDING, latest.number, latest.status)
    module.system_id = system.id
    if latest is not None and latest.status == "draft":
        outcome = NEW_VERSION if want_published else DRAFT_REPLACED
        # The draft changes under any open web-editor form: advance its optimistic lock so
        # such a form's next save is a conflict, not a silent overwrite of this import.
        latest.lock_version += 1
        version = _fill_version(latest, spec, content_hash)
        signoff.clear_stale(version, actor=actor)  # a change after approval clears it
    else:
        outcome = NEW_VERSION
        number = latest.number + 1 if latest is not None else 1
        version = _fill_version(ModuleVersion(module_id=module.id, number=number), spec,
                                content_hash)
    _store_assets(module.id, spec.assets)
    return ModuleOutcome(spec.slug, outcome, version.number, version.status)


def _fill_version(version: ModuleVersion, spec: ModuleSpec, content_hash: str) -> ModuleVersion:
    """Write the spec into a new or draft version (never called on a published one)."""
    if version.id is not None and version.status != "draft":
        raise RuntimeError("a published version is immutable")  # guard for future callers
    # Always written as a draft: only publish_version publishes (the sign-off gate).
    version.status = "draft"
    version.published_at = None
    version.content_hash = content_hash
    for name in ("retraining_required", "change_notes", "title", "summary",
                 "estimated_minutes", "validity_months", "pass_mark", "attempt_limit",
                 "time_limit_minutes", "draw_count", "shuffle_questions", "shuffle_options"):
        setattr(version, name, getattr(spec, name))
    version.objectives = list(spec.objectives)
    version.observed_objectives = list(spec.observed_objectives)
    version.audience = list(spec.audience)
    if version.id is None:
        db.session.add(version)
        db.session.flush()
    _sync_lessons(version, spec.lessons)
    _sync_questions(version, spec.questions)
    db.session.flush()
    return version


def _sync_lessons(version: ModuleVersion, lessons: list[LessonSpec]) -> None:
    existing = {lesson.position: lesson for lesson in version.lessons}
    for spec in lessons:
        lesson = existing.pop(spec.position, None)
        if lesson is None:
            version.lessons.append(Lesson(position=spec.position, slug=spec.slug,
                                          title=spec.title, body_markdown=spec.body_markdown))
        else:
            lesson.slug, lesson.title, lesson.body_markdown = \
                spec.slug, spec.title, spec.body_markdown
    for stale in existing.values():
        version.lessons.remove(stale)


def _sync_questions(version: ModuleVersion, questions: list[QuestionSpec]) -> None:
    """Match a draft's questions by key so rows that other tables may point at survive."""
    existing = {question.key: question for question in version.questions}
    for position, spec in enumerate(questions, start=1):
        question = existing.pop(spec.key, None)
        if question is None:
            question = Question(key=spec.key)
            version.questions.append(question)
        question.position, question.type, question.prompt = position, spec.type, spec.prompt
        question.explanation, question.data = spec.explanation, dict(spec.data)
        question.critical = spec.critical
    for stale in existing.values():
        version.questions.remove(stale)


def _store_assets(module_id: int, assets: list[AssetSpec]) -> None:
    """Add new images; mark reused ones as newest so the asset route serves what the newest
    version references (files are deduplicated by path and hash per module)."""
    now = utcnow()
    for spec in assets:
        asset = db.session.scalar(select(ContentAsset).where(
            ContentAsset.module_id == module_id, ContentAsset.path == spec.path,
            ContentAsset.sha256 == spec.sha256))
        if asset is None:
            db.session.add(ContentAsset(module_id=module_id, path=spec.path, sha256=spec.sha256,
                                        content_type=spec.content_type, data=spec.data,
                                        created_at=now))
        else:
            asset.created_at = now
    db.session.flush()


# ------------------------------------------------------------------------------ publish


def publish_version(organisation_id: int, version_id: int, *, actor: User | None = None,
                    local_markers_ok: bool = False, go_live_at: datetime | None = None,
                    now: datetime | None = None) -> ModuleVersion:
    """Publish a draft version: THE one way a version reaches learners (content import,
    ``lms-plugin content publish`` and the authoring pages all call this).

    The gate (issue 17): every reviewer that applies to the module (``catalog.signoff``) has
    approved this exact version, i.e. its current ``content_hash``; stale approvals are
    cleared first. The version must hold no unresolved ``[[local: …]]`` marker (unless
    ``local_markers_ok``: a demo organisation publishing the shipped content as written).
    ``go_live_at`` (UTC): when learners start on it (None: now; a retraining version's
    go-live date, issue 14). Audited ``content.publish`` with the status before/after, the
    change notes, retraining choice, go-live time, the hash and the approvals; announces
    ``events.version_published``.

    Raises NotFound (404: no such version in the organisation), Conflict (409: not a draft),
    SignoffMissing (a 409 Conflict: approvals missing, naming each reviewer still to approve
    in its message and ``waiting``), ValidationFailed (422: an
    unresolved localisation marker, naming the lesson or question and line).
    """
    version = db.session.get(ModuleVersion, version_id)
    if version is None or version.module.organisation_id != organisation_id:
        raise NotFound("no such module version in your organisation")
    module = version.module
    if version.status != "draft":
        raise Conflict(f"{module.slug} version {version.number} is {version.status}; only a "
                       "draft can be published")
    markers = [] if local_markers_ok else publish_problems([version_to_spec(version)])
    if markers:
        raise ValidationFailed("cannot publish: " + "; ".join(str(p) for p in markers[:20]),
                               field="version")
    signoff.clear_stale(version, actor=actor)
    states = signoff.status(version)
    waiting = [s.label for s in states if s.approval is None]
    if waiting:
        raise SignoffMissing(f"{module.slug} version {version.number} cannot be published "
                             f"yet: waiting for sign-off from {', '.join(waiting)} (each must "
                             "approve this exact version: lms-plugin signoff approve)", waiting)
    now = now or utcnow()
    version.status = "published"
    version.published_at = now
    version.go_live_at = go_live_at
    db.session.flush()
    record_audit("content.publish", actor=actor, organisation_id=organisation_id,
                 target=("module_version", version.id),
                 details={"module": module.slug, "version": version.number,
                          "before": {"status": "draft"},
                          "after": {"status": "published", "change_notes": version.change_notes,
                                    "retraining_required": version.retraining_required,
                                    "go_live_at": go_live_at.isoformat() if go_live_at
                                    else None},
                          "content_hash": version.content_hash,
                          "local_markers_ok": local_markers_ok,
                          "approvals": [f"{s.approval.reviewer_name} ({s.approval.role_name}) "
                                        f"{s.approval.approved_at.isoformat()}"
                                        for s in states]})
    events.announce(events.version_published, events.VersionPublished(
        version_id=version.id, module_id=module.id, organisation_id=organisation_id,
        number=version.number, retraining_required=version.retraining_required,
        go_live_at=go_live_at, when=now))
    return version


# ------------------------------------------------------------------------------- export


def version_to_spec(version: ModuleVersion) -> ModuleSpec:
    """A stored version as the same dataclass the loader produces (export, bank export)."""
    module = version.module
    spec = ModuleSpec(
        slug=module.slug, title=version.title, system=module.system.slug,
        status="published" if version.status == "published" else "draft",
        retraining_required=version.retraining_required, change_notes=version.change_notes,
        summary=version.summary, objectives=list(version.objectives or []),
        observed_objectives=list(version.observed_objectives or []),
        audience=list(version.audience or []), estimated_minutes=version.estimated_minutes,
        validity_months=version.validity_months, pass_mark=version.pass_mark,
        attempt_limit=version.attempt_limit, time_limit_minutes=version.time_limit_minutes,
        draw_count=version.draw_count, shuffle_questions=version.shuffle_questions,
        shuffle_options=version.shuffle_options,
    )
    spec.questions = [QuestionSpec(key=q.key, type=q.type, prompt=q.prompt,
                                   explanation=q.explanation or "", data=dict(q.data or {}),
                                   critical=bool(q.critical))
                      for q in version.questions]
    spec.lessons = [LessonSpec(position=lesson.position, slug=lesson.slug, title=lesson.title,
                               body_markdown=lesson.body_markdown)
                    for lesson in version.lessons]
    return spec


def exportable_modules(organisation_id: int) -> list[tuple[Module, ModuleVersion]]:
    """Each module with its newest version (a retired newest version is not exported)."""
    result = []
    for module in db.session.scalars(select(Module).where(
            Module.organisation_id == organisation_id).order_by(Module.slug)):
        version = latest_version(module)
        if version is not None and version.status != "retired":
            result.append((module, version))
    return result


def assets_for(module_id: int, paths: list[str]) -> list[AssetSpec]:
    result = []
    for path in sorted(set(paths)):
        asset = db.session.scalar(
            select(ContentAsset).where(ContentAsset.module_id == module_id,
                                       ContentAsset.path == path)
            .order_by(ContentAsset.created_at.desc(), ContentAsset.id.desc()).limit(1))
        if asset is not None:
            result.append(AssetSpec(path=asset.path, content_type=asset.content_type,
                                    data=asset.data))
    return result
