"""``lms-plugin content …``: validate, import and export content files and question banks.

Thin commands over ``content_format``, ``services``, ``exporter``, ``gift`` and
``moodle_xml``; each command that writes commits exactly once, at the end.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TypeVar

import click
from flask.cli import AppGroup

from lms_plugin.catalog import exporter, gift, moodle_xml, services
from lms_plugin.catalog.content_format import BankResult, ContentBundle, load_content
from lms_plugin.clitypes import PathArg
from lms_plugin.errors import DomainError
from lms_plugin.extensions import db

# The shipped starter modules (lms_plugin/content/, inside the package so a wheel install has
# them), imported by ``lms-plugin setup``.
SHIPPED_CONTENT = Path(__file__).resolve().parents[1] / "content"

T = TypeVar("T")

content_cli = AppGroup("content", help="Validate, import and export training content files.")

_ORG_OPTION = click.option("--organisation", help="Organisation whose catalog to use "
                           "(default: the only one there is; never created here).")


def commit_or_fail(work: Callable[[], T]) -> T:
    """Run ``work`` and commit once (the CLI edge); a DomainError becomes one line
    (ClickException) and anything raised rolls back, so nothing is written."""
    try:
        result = work()
        db.session.commit()
        return result
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    except BaseException:
        db.session.rollback()
        raise


def _report(directory: str, bundle: ContentBundle) -> None:
    """Each problem located under ``directory`` (problems about the folder itself already
    name it: printed once, not as ``/x//x``)."""
    prefix = directory.rstrip("/") or "/"
    for problem in bundle.problems:
        if Path(problem.path) == Path(directory):
            click.echo(str(problem), err=True)
        else:
            click.echo(f"{prefix.rstrip('/')}/{problem}", err=True)


def _warn(directory: str, bundle: ContentBundle) -> None:
    """Advisory findings (a pool without scenario items) as ``warning: file:line: …``."""
    for module in bundle.modules:
        for warning in module.warnings:
            click.echo(f"warning: {directory.rstrip('/')}/{warning}", err=True)


@content_cli.command("validate")
@click.argument("directory", type=PathArg(file_okay=False, exists=True))
def validate(directory: str) -> None:
    """Check DIRECTORY (systems/ and modules/) and print every problem; writes nothing."""
    bundle = load_content(directory)
    _report(directory, bundle)
    if bundle.problems:
        click.echo(f"{len(bundle.problems)} problem(s) found in {directory}.", err=True)
        sys.exit(1)
    _warn(directory, bundle)
    markers = services.publish_problems(bundle.modules)
    if markers:
        click.echo(f"{len(markers)} localisation marker(s) ([[local: …]]) to resolve before "
                   "publishing (drafts may hold them):", err=True)
        for problem in markers:
            click.echo(f"  {directory.rstrip('/')}/{problem}", err=True)
    questions = sum(len(m.questions) for m in bundle.modules)
    lessons = sum(len(m.lessons) for m in bundle.modules)
    click.echo(f"OK: {len(bundle.systems)} systems, {len(bundle.modules)} modules, "
               f"{lessons} lessons, {questions} questions in {directory}.")


def import_directory(directory: str, organisation: str | None, *,
                     publish: bool = True,
                     keep_existing: bool = False) -> services.ImportSummary | None:
    """Validate then import in one transaction into an existing organisation (name or slug;
    None: the only one there is); None (and nothing written) on problems. Also used by
    ``lms-plugin setup`` for the shipped content (``publish=False``: drafts awaiting the
    organisation's sign-off; ``keep_existing``: modules it has are left as they are). An
    unknown organisation is a ClickException listing the known ones."""
    from lms_plugin.accounts.services import resolve_organisation

    bundle = load_content(directory)
    if bundle.problems:
        _report(directory, bundle)
        click.echo(f"{len(bundle.problems)} problem(s) found; nothing was imported.", err=True)
        return None
    _warn(directory, bundle)

    def work() -> services.ImportSummary:
        org = resolve_organisation(organisation)
        options = {"publish": publish, "keep_existing": keep_existing}
        if len(bundle.modules) > 20:
            with click.progressbar(length=len(bundle.modules), label="Importing modules",
                                   file=sys.stderr) as bar:
                return services.import_content(bundle, org, **options,
                                               progress=lambda _: bar.update(1))
        return services.import_content(bundle, org, **options, progress=lambda o: click.echo(
            f"  {o.slug}: {o.outcome} (version {o.number}, {o.status})"
            + (f"; awaiting sign-off from {', '.join(o.awaiting)}" if o.awaiting else "")))

    summary = commit_or_fail(work)
    return summary


@content_cli.command("import")
@click.argument("directory", type=PathArg(file_okay=False, exists=True))
@_ORG_OPTION
@click.option("--drafts", is_flag=True,
              help="Import every module as a draft awaiting sign-off, whatever its file says "
                   "(files with [[local: …]] markers cannot be published).")
def import_(directory: str, organisation: str | None, drafts: bool) -> None:
    """Validate DIRECTORY, then import it in one transaction (unchanged modules are left
    alone; changed ones get a new version with the status the file gives; a module to be
    published waits as a draft until its required reviewers approve it)."""
    summary = import_directory(directory, organisation, publish=not drafts)
    if summary is None:
        sys.exit(1)
    from lms_plugin.accounts.models import Organisation

    org = db.session.get(Organisation, summary.organisation_id)
    click.echo(f"Imported into {org.name}: {summary.line()}.")


@content_cli.command("publish")
@click.argument("slug")
@_ORG_OPTION
@click.option("--actor", help="Email of the person publishing (recorded in the audit log).")
def publish(slug: str, organisation: str | None, actor: str | None) -> None:
    """Publish module SLUG's newest draft: refused until every required reviewer has approved
    that exact version (lms-plugin signoff approve) and no [[local: …]] marker is left."""
    from lms_plugin.accounts.services import resolve_organisation
    from lms_plugin.catalog import signoff

    def work():
        org = resolve_organisation(organisation)
        module = services.get_module(org.id, slug)
        version = services.latest_version(module)
        if version is None or version.status != "draft":
            raise click.ClickException(f"{slug} has no draft to publish"
                                       + (f" (version {version.number} is {version.status})"
                                          if version else ""))
        person = person_by_email(org.id, actor) if actor else None
        if not signoff.list_reviewers(org.id, module.id, applying=True):
            click.echo(f"warning: {org.name} names no required reviewers, so nothing gates "
                       "publishing; name them with 'lms-plugin signoff reviewers set'",
                       err=True)
        return org, services.publish_version(org.id, version.id, actor=person)

    org, version = commit_or_fail(work)
    click.echo(f"Published {slug} version {version.number} in {org.name}.")


def person_by_email(organisation_id: int, email: str):
    """The organisation's person with this email (ClickException when there is none)."""
    from sqlalchemy import func, select

    from lms_plugin.accounts.models import User

    person = db.session.scalar(select(User).where(
        User.organisation_id == organisation_id,
        func.lower(User.email) == email.strip().lower()))
    if person is None:
        raise click.ClickException(f"no person with email {email} in this organisation")
    return person


@content_cli.command("export")
@click.argument("directory", type=PathArg(file_okay=False))
@_ORG_OPTION
@click.option("--overwrite", is_flag=True,
              help="Write into a non-empty directory (module folders are replaced).")
def export(directory: str, organisation: str | None, overwrite: bool) -> None:
    """Write every module's newest version (and all systems) to DIRECTORY as content files."""
    from lms_plugin.accounts.services import resolve_organisation
    from lms_plugin.catalog.content_format import SystemSpec

    root = Path(directory)
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise click.ClickException(f"{directory} is not empty; use --overwrite to write into it")
    try:
        org = resolve_organisation(organisation)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    try:
        root.mkdir(parents=True, exist_ok=True)
        systems = services.list_systems(org.id)
        for system in systems:
            exporter.write_system(root, SystemSpec(slug=system.slug, name=system.name,
                                                   vendor=system.vendor,
                                                   description=system.description or ""))
        modules = services.exportable_modules(org.id)
        for module, version in modules:
            spec = services.version_to_spec(version)
            spec.assets = services.assets_for(module.id, exporter.referenced_images(spec))
            exporter.write_module(root, spec)
            click.echo(f"  {module.slug}: version {version.number} ({version.status})")
    except OSError as exc:  # unwritable folder, a file in the way, a full disk
        raise click.ClickException(f"cannot write to {directory}: {_os_reason(exc)}") from None
    finally:
        db.session.rollback()  # read-only
    click.echo(f"Exported {len(systems)} systems and {len(modules)} modules to {directory}.")


def _os_reason(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _write_output(output: str, text: str) -> None:
    """Write ``text`` to the file ``output``; an unwritable place is a one-line error."""
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {_os_reason(exc)}") from None


def _bank_out(result: BankResult, output: str | None, text: str | None) -> None:
    """Write ``text`` (None: already streamed), then the warnings, problems and counts.
    Nothing converted: no output file is written (an empty file would look like a result)."""
    if text is None:
        pass
    elif output:
        if result.count:
            _write_output(output, text)
    else:
        click.echo(text, nl=False)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in result.unsupported:
        click.echo(f"not converted: {problem}", err=True)
    click.echo(f"{result.count} question(s) converted, {len(result.unsupported)} not "
               f"converted, {len(result.warnings)} warning(s).", err=True)
    if output and not result.count:
        click.echo(f"Nothing converted: {output} was not written.", err=True)
    if result.unsupported:
        sys.exit(1)


@content_cli.command("import-gift")
@click.argument("bank", type=PathArg(dir_okay=False, exists=True))
@click.option("-o", "--output", type=PathArg(dir_okay=False),
              help="Write the questions YAML here instead of standard output.")
def import_gift(bank: str, output: str | None) -> None:
    """Convert a GIFT file to module.yaml ``questions:`` YAML (paste it into a module);
    questions that cannot be converted are listed and the exit status is 1."""
    result = gift.parse_gift(Path(bank).read_text(encoding="utf-8-sig"))
    _bank_out(result, output, exporter.bank_yaml(result))


@content_cli.command("import-moodle-xml")
@click.argument("bank", type=PathArg(dir_okay=False, exists=True))
@click.option("-o", "--output", type=PathArg(dir_okay=False),
              help="Write the questions YAML here (and question images into images/ beside "
                   "it) instead of standard output.")
def import_moodle_xml(bank: str, output: str | None) -> None:
    """Convert a Moodle XML question export to module.yaml ``questions:`` YAML; images
    embedded in question texts are written to ``images/`` beside the output file (copy
    them into the module's images/ folder)."""
    # Streamed: each question's YAML is written as soon as it is converted, so a large bank
    # never sits in memory (bench/bench_moodle_xml.py).
    # Into a temporary file beside OUTPUT, renamed over it only when something converted:
    # a bank where nothing converts leaves no (empty) file and keeps an existing one.
    try:
        out = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed below, then renamed)
            "w", encoding="utf-8", delete=False, prefix=".lms-plugin-",
            dir=Path(output).resolve().parent) if output else None
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {_os_reason(exc)}") from None
    try:
        with out if out is not None else nullcontext(None):
            result = moodle_xml.convert_moodle_xml_to_yaml(
                bank,
                out.write if out is not None else (lambda text: click.echo(text, nl=False)),
                assets_dir=Path(output).resolve().parent if output else None)
        if out is not None and result.count:
            os.replace(out.name, output)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {_os_reason(exc)}") from None
    finally:
        if out is not None and os.path.exists(out.name):
            os.unlink(out.name)
    _bank_out(result, output, None)


def _module_questions(organisation: str | None, slug: str, with_images: bool = False):
    """The newest version's questions of a module (and, ``with_images``, the images their
    prompts show, as ``{"images/x.png": AssetSpec}``)."""
    from lms_plugin.accounts.services import resolve_organisation

    try:
        module = services.get_module(resolve_organisation(organisation).id, slug)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    version = services.latest_version(module)
    spec = services.version_to_spec(version) if version is not None else None
    images = {}
    if spec is not None and with_images:
        spec.lessons = []  # only what the questions show
        images = {a.path: a for a in services.assets_for(module.id,
                                                         exporter.referenced_images(spec))}
    db.session.rollback()  # read-only
    if spec is None:
        raise click.ClickException(f"module '{slug}' has no version")
    return (spec.questions, images) if with_images else spec.questions


@content_cli.command("export-gift")
@click.argument("module")
@_ORG_OPTION
@click.option("-o", "--output", type=PathArg(dir_okay=False))
def export_gift(module: str, organisation: str | None, output: str | None) -> None:
    """Write MODULE's newest question pool as GIFT (ordering items are listed as not
    converted: GIFT has no ordering type)."""
    result = gift.export_gift(_module_questions(organisation, module), category=module)
    _bank_out(result, output, result.text)


@content_cli.command("export-moodle-xml")
@click.argument("module")
@_ORG_OPTION
@click.option("-o", "--output", type=PathArg(dir_okay=False))
def export_moodle_xml(module: str, organisation: str | None, output: str | None) -> None:
    """Write MODULE's newest question pool as Moodle XML."""
    questions, images = _module_questions(organisation, module, with_images=True)
    result = moodle_xml.export_moodle_xml(questions, category=module, images=images)
    _bank_out(result, output, result.text)
