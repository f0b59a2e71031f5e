"""Issue 17: clinical sign-off before publish, localisation markers, sources, pool sizes.

Publishing goes through ``catalog.services.publish_version`` only; it needs every required
reviewer's approval of the exact version (its content hash). The tests drive the CLI (the
edge operators use) and the services, and check the database afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, Organisation
from lms_plugin.catalog import services, signoff
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import ModuleVersion, SignoffApproval
from lms_plugin.errors import Conflict, ValidationFailed
from lms_plugin.extensions import db
from tests.catalog.helpers import VALID, copy_valid
from tests.catalog.test_content_format import BASE, LESSON, SOURCES, build, problems

SHIPPED = Path(__file__).resolve().parents[2] / "lms_plugin" / "content"


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def version_of(app, slug: str, org: str = "General Hospital") -> tuple[int, str, str]:
    """(number, status, content hash) of the module's newest version."""
    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id).where(Organisation.name == org))
        version = services.latest_version(services.get_module(org_id, slug))
        return version.number, version.status, version.content_hash


@pytest.fixture
def reviewers(app, factory):
    """General Hospital with the valid fixture imported as drafts and two required
    reviewers: the role "pharmacist" (held by one person) and a named nurse educator."""
    factory.organisation()
    pharmacist = factory.user("learner", email="pharm@example.org")
    educator = factory.user("author", email="educator@example.org")
    factory.user("author", email="other@example.org")
    assert cli(app, "content", "import", str(VALID), "--drafts").exit_code == 0
    assert cli(app, "signoff", "holders", "add", "Pharmacist",
               "pharm@example.org").exit_code == 0
    result = cli(app, "signoff", "reviewers", "set", "--role", "pharmacist",
                 "--person", "educator@example.org=Nurse Educator")
    assert result.exit_code == 0, result.output
    assert "Required reviewers for every module of General Hospital" in result.output
    return {"pharmacist": pharmacist, "educator": educator}


def test_publish_is_refused_until_every_reviewer_approved_this_exact_version(app, reviewers):
    refused = cli(app, "content", "publish", "safe-ordering")
    assert refused.exit_code == 1
    assert "waiting for sign-off from" in refused.output
    assert "pharmacist" in refused.output and "(nurse educator)" in refused.output
    assert version_of(app, "safe-ordering")[1] == "draft"

    # someone who is not a required reviewer cannot approve
    stranger = cli(app, "signoff", "approve", "safe-ordering", "--email", "other@example.org")
    assert stranger.exit_code == 1 and "is not a required reviewer" in stranger.output

    first = cli(app, "signoff", "approve", "safe-ordering", "--email", "pharm@example.org")
    assert first.exit_code == 0, first.output
    assert "Still waiting for:" in first.output and "nurse educator" in first.output
    assert cli(app, "content", "publish", "safe-ordering").exit_code == 1

    second = cli(app, "signoff", "approve", "safe-ordering", "--email",
                 "educator@example.org")
    assert second.exit_code == 0, second.output
    assert "Every required reviewer has approved" in second.output
    status = cli(app, "signoff", "status", "safe-ordering")
    assert status.output.count("approved by") == 2

    published = cli(app, "content", "publish", "safe-ordering")
    assert published.exit_code == 0, published.output
    number, state, content_hash = version_of(app, "safe-ordering")
    assert (number, state) == (1, "published")
    with app.app_context():
        approvals = db.session.scalars(select(SignoffApproval)).all()
        assert {(a.role_name, a.content_hash) for a in approvals} == {
            ("pharmacist", content_hash), ("nurse educator", content_hash)}
        assert all(a.reviewer_name and a.approved_at for a in approvals)
        actions = [e.action for e in db.session.scalars(
            select(AuditEvent).order_by(AuditEvent.id))]
        assert actions.count("signoff.approve") == 2 and "content.publish" in actions
        publish = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "content.publish"))
        assert publish.details["before"] == {"status": "draft"}
        assert publish.details["content_hash"] == content_hash
        assert len(publish.details["approvals"]) == 2
    # the other module still waits: approvals are per version
    assert version_of(app, "bcma-scanning")[1] == "draft"


def test_a_change_after_approval_clears_it(app, reviewers, tmp_path):
    for email in ("pharm@example.org", "educator@example.org"):
        assert cli(app, "signoff", "approve", "safe-ordering", "--email", email).exit_code == 0
    root = copy_valid(tmp_path)
    lesson = root / "modules" / "safe-ordering" / "lessons" / "02-dose-route-frequency.md"
    lesson.write_text(lesson.read_text().replace("\n## Sources", "\nCheck units.\n\n## Sources"))
    changed = cli(app, "content", "import", str(root), "--drafts")
    assert changed.exit_code == 0, changed.output
    assert "safe-ordering: draft replaced" in changed.output
    with app.app_context():
        assert db.session.scalar(select(func.count(SignoffApproval.id))) == 0
        cleared = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "signoff.cleared"))
        assert len(cleared.details["before"]) == 2 and cleared.details["after"] == []
    refused = cli(app, "content", "publish", "safe-ordering")
    assert refused.exit_code == 1 and "waiting for sign-off" in refused.output

    # importing the file as `published` keeps it a draft until the new content is approved
    pending = cli(app, "content", "import", str(root))
    assert pending.exit_code == 0, pending.output
    assert "safe-ordering: unchanged (version 1, draft); awaiting sign-off from" in \
        pending.output
    assert version_of(app, "safe-ordering")[1] == "draft"
    for email in ("pharm@example.org", "educator@example.org"):
        assert cli(app, "signoff", "approve", "safe-ordering", "--email", email).exit_code == 0
    published = cli(app, "content", "import", str(root))
    assert "safe-ordering: new version (version 1, published)" in published.output
    assert version_of(app, "safe-ordering")[1] == "published"


def test_a_stale_approval_never_counts_even_without_an_import(app, reviewers):
    """The gate compares hashes itself: an approval row of other content is ignored."""
    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id))
        version = services.latest_version(services.get_module(org_id, "safe-ordering"))
        from lms_plugin.catalog.cli import person_by_email

        for person in ("pharm@example.org", "educator@example.org"):
            signoff.approve(version, person_by_email(org_id, person))
        version.content_hash = "0" * 64  # as if the content changed behind the approvals
        db.session.flush()
        with pytest.raises(Conflict, match="waiting for sign-off"):
            services.publish_version(org_id, version.id)
        db.session.rollback()


def test_publish_version_refuses_other_organisations_and_published_versions(app, reviewers,
                                                                           factory):
    factory.organisation("North Clinic")
    with app.app_context():
        north = db.session.scalar(select(Organisation.id).where(
            Organisation.name == "North Clinic"))
        version_id = db.session.scalar(select(ModuleVersion.id))
        from lms_plugin.errors import NotFound
        with pytest.raises(NotFound):
            services.publish_version(north, version_id)
    # an organisation with no named reviewers is not gated (a demo organisation)
    org = ("--organisation", "General Hospital")
    assert cli(app, "signoff", "reviewers", "set", *org).exit_code == 0
    listed = cli(app, "signoff", "reviewers", "list", *org)
    assert "publishing is not gated" in listed.output
    published = cli(app, "content", "publish", "safe-ordering", *org)
    assert published.exit_code == 0, published.output
    assert "names no required reviewers" in published.output
    again = cli(app, "content", "publish", "safe-ordering", *org)
    assert again.exit_code == 1 and "has no draft to publish" in again.output


def test_shipped_content_imports_as_drafts_in_a_new_organisation_and_published_in_a_demo(
        app, factory):
    from lms_plugin.accounts.services import get_or_create_organisation

    bundle = load_content(SHIPPED)
    assert bundle.ok, bundle.problems
    with app.app_context():
        real = get_or_create_organisation("Real Hospital")
        summary = services.import_content(bundle, real, publish=False)
        demo = get_or_create_organisation("Demo Hospital")
        services.import_content(bundle, demo, publish=True, local_markers_ok=True)
        db.session.commit()
        assert {m.status for m in summary.modules} == {"draft"}
        assert services.list_modules(real.id) == []  # learners see nothing yet
        assert len(services.list_modules(real.id, include_unpublished=True)) == 7
        assert len(services.list_modules(demo.id)) == 7
        # a real organisation cannot publish the shipped files while markers remain
        with pytest.raises(ValidationFailed, match="unresolved localisation marker"):
            services.import_content(bundle, real, publish=True)
        db.session.rollback()
        version = services.latest_version(services.get_module(real.id, "cpoe-safe-ordering"))
        with pytest.raises(ValidationFailed, match=r"lesson 2 .*unresolved localisation"):
            services.publish_version(real.id, version.id)
        db.session.rollback()


def test_setup_imports_the_shipped_content_as_drafts_and_says_what_to_do(app, monkeypatch,
                                                                          tmp_path):
    from lms_plugin.catalog import cli as catalog_cli
    from lms_plugin.cli import setup

    shipped = tmp_path / "shipped"
    shutil.copytree(VALID, shipped)
    monkeypatch.setattr(catalog_cli, "SHIPPED_CONTENT", shipped)
    result = app.test_cli_runner().invoke(setup, args=[])
    assert result.exit_code == 0, result.output
    assert "2 module(s) are drafts awaiting your organisation's clinical sign-off" in \
        result.output
    assert "lms-plugin signoff reviewers set" in result.output
    assert "lms-plugin content publish" in result.output
    assert version_of(app, "safe-ordering", "Default Health System")[1] == "draft"


# ------------------------------------------------------------------ validator (issue 17)

def test_a_lesson_without_sources_is_refused_at_its_line(tmp_path):
    root = build(tmp_path, lessons={"01-introduction.md": "# Introduction\n\nWords.\n"})
    assert "modules/demo/lessons/01-introduction.md:3: lesson has no sources: end it with " \
           "a '## Sources' heading and entries like '- Title. Publisher, 2024. " \
           "<https://…>'" in problems(root)


def test_a_malformed_source_entry_is_refused_at_its_line(tmp_path):
    lesson = ("# Introduction\n\nWords.\n\n## Sources\n\n- Some page without a year "
              "<https://example.org>\n")
    found = problems(build(tmp_path, lessons={"01-introduction.md": lesson}))
    assert found == ["modules/demo/lessons/01-introduction.md:7: a source needs title, "
                     "publisher, year and an https link: '- Title. Publisher, 2024. "
                     "<https://…>'"]


def test_a_pool_smaller_than_twice_the_draw_is_refused_at_the_draw_line(tmp_path):
    found = problems(build(tmp_path, BASE.replace("draw: 1", "draw: 2")))
    assert any(p.startswith("modules/demo/module.yaml:8: 'draw' is 2 but the pool has only 2 "
                            "questions: a pool needs at least twice the draw (4)")
               for p in found), found


def test_a_pool_without_scenario_items_is_warned_not_refused(app, tmp_path):
    root = build(tmp_path)
    bundle = load_content(root)
    assert bundle.ok
    assert [str(w) for w in bundle.modules[0].warnings] == [
        "modules/demo/module.yaml:10: no scenario items: every question is a short recall "
        "item; put the learner in a situation (\"Your patient…\") to test safe practice"]
    result = app.test_cli_runner().invoke(args=["content", "validate", str(root)])
    assert result.exit_code == 0
    assert "warning: " in result.output and "no scenario items" in result.output
    scenario = BASE.replace("prompt: Pick a", "prompt: Your patient asks which one; pick a")
    assert load_content(build(tmp_path / "b", scenario)).modules[0].warnings == []


def test_a_localisation_marker_blocks_publishing_but_not_a_draft(app, factory, tmp_path):
    from lms_plugin.accounts.services import get_or_create_organisation

    marked = ("# Introduction\n\nCall the team within\n[[local: 15 minutes for an urgent "
              "message]].\n" + SOURCES)
    root = build(tmp_path, lessons={"01-introduction.md": marked})
    bundle = load_content(root)
    assert bundle.ok, bundle.problems  # a draft may hold markers: validation passes
    validated = app.test_cli_runner().invoke(args=["content", "validate", str(root)])
    assert validated.exit_code == 0
    assert "modules/demo/lessons/01-introduction.md:4: unresolved localisation marker " \
           "'[[local: 15 minutes for an urgent message]]'" in validated.output
    with app.app_context():
        org = get_or_create_organisation("General Hospital")
        db.session.commit()
        with pytest.raises(ValidationFailed) as refused:
            services.import_content(bundle, org)  # the file says `status: published`
        assert "modules/demo/lessons/01-introduction.md:4: unresolved localisation " \
               "marker" in refused.value.message
        db.session.rollback()
        summary = services.import_content(bundle, org, publish=False)
        db.session.commit()
        assert summary.modules[0].status == "draft"


def test_markers_are_highlighted_for_authors_and_never_shown_raw():
    from lms_plugin.markdown import render_markdown, render_prompt

    text = "Call within [[local: 15 *minutes*]] of the alert."
    author = str(render_markdown(text, highlight_local=True))
    learner = str(render_markdown(text))
    assert '<mark class="local-marker">15 <em>minutes</em></mark>' in author
    assert "[[local" not in author and "[[local" not in learner
    assert "Call within 15 <em>minutes</em> of the alert." in learner
    assert str(render_prompt("Within [[local: 15 minutes]]?", 1)) == "Within 15 minutes?"


def test_critical_questions_and_observed_objectives_round_trip(app, tmp_path):
    text = BASE.replace("  - id: q2\n", "  - id: q2\n    critical: true\n").replace(
        "estimated_minutes: 10\n",
        "estimated_minutes: 10\nobjectives:\n  - Order safely\n"
        "  - {text: Scan at the bedside, observed: true}\n")
    root = build(tmp_path, text, lessons={"01-introduction.md": LESSON})
    bundle = load_content(root)
    assert bundle.ok, bundle.problems
    spec = bundle.modules[0]
    assert [q.critical for q in spec.questions] == [False, True]
    assert spec.objectives == ["Order safely", "Scan at the bedside"]
    assert spec.observed_objectives == ["Scan at the bedside"]
    with app.app_context():
        from lms_plugin.accounts.services import get_or_create_organisation

        org = get_or_create_organisation("General Hospital")
        services.import_content(bundle, org)
        db.session.commit()
        version = services.latest_version(services.get_module(org.id, "demo"))
        assert version.observed_objectives == ["Scan at the bedside"]
        assert [q.critical for q in version.questions] == [False, True]
        assert services.version_to_spec(version).content_hash() == spec.content_hash()


def test_approvals_stay_inside_the_organisation_and_only_drafts_are_signed(app, reviewers,
                                                                          factory):
    from lms_plugin.accounts.models import User
    from lms_plugin.catalog.cli import person_by_email
    from lms_plugin.errors import NotFound

    factory.organisation("North Clinic")
    outsider_id = factory.user("admin", email="north@example.org", org="North Clinic")
    with app.app_context():
        org_id = db.session.scalar(select(Organisation.id).where(
            Organisation.name == "General Hospital"))
        version = services.latest_version(services.get_module(org_id, "safe-ordering"))
        outsider = db.session.get(User, outsider_id)
        with pytest.raises(NotFound):
            signoff.approve(version, outsider)
        with pytest.raises(NotFound):
            signoff.set_reviewers(org_id, roles=[], people=[(outsider, "pharmacist")])
        with pytest.raises(NotFound):
            signoff.add_role_holder(org_id, "pharmacist", outsider)
        with pytest.raises(ValidationFailed, match="must not be empty"):
            signoff.set_reviewers(org_id, roles=["   "], people=[])
        db.session.rollback()
        for email in ("pharm@example.org", "educator@example.org"):
            signoff.approve(version, person_by_email(org_id, email))
        services.publish_version(org_id, version.id)
        with pytest.raises(Conflict, match="only a draft is signed off"):
            signoff.approve(version, person_by_email(org_id, "pharm@example.org"))
        with pytest.raises(Conflict, match="only a draft can be published"):
            services.publish_version(org_id, version.id)
        db.session.rollback()


def test_an_author_previewing_a_draft_sees_markers_highlighted(app, client, login_as, tmp_path):
    from lms_plugin.accounts.services import get_or_create_organisation

    marked = ("# Introduction\n\nCall within [[local: 15 minutes]] of the alert.\n" + SOURCES)
    root = build(tmp_path, lessons={"01-introduction.md": marked})
    with app.app_context():
        services.import_content(load_content(root),
                                get_or_create_organisation("General Hospital"), publish=False)
        db.session.commit()
    login_as("admin")
    html = client.get("/modules/demo/lessons/1?preview=1").get_data(as_text=True)
    assert '<mark class="local-marker">15 minutes</mark>' in html
    assert "[[local" not in html


def test_a_person_holding_two_required_roles_is_told_to_choose_one_with_role(app, reviewers):
    assert cli(app, "signoff", "holders", "add", "nurse educator",
               "pharm@example.org").exit_code == 0
    assert cli(app, "signoff", "reviewers", "set", "--role", "pharmacist",
               "--role", "nurse educator").exit_code == 0
    both = cli(app, "signoff", "approve", "safe-ordering", "--email", "pharm@example.org")
    assert both.exit_code == 1
    assert "choose one with --role" in both.output, both.output
    chosen = cli(app, "signoff", "approve", "safe-ordering", "--email", "pharm@example.org",
                 "--role", "pharmacist")
    assert chosen.exit_code == 0, chosen.output


def test_running_setup_again_keeps_a_draft_the_hospital_edited_and_its_approvals(
        app, monkeypatch, tmp_path, factory):
    """`make run` runs setup at every start: it must not put the shipped wording back over a
    draft the hospital localised (and approved), nor add a shipped draft beside a version
    the hospital published."""
    from lms_plugin.catalog import cli as catalog_cli
    from lms_plugin.cli import setup

    shipped = tmp_path / "shipped"
    shutil.copytree(VALID, shipped)
    monkeypatch.setattr(catalog_cli, "SHIPPED_CONTENT", shipped)
    assert app.test_cli_runner().invoke(setup, args=[]).exit_code == 0
    org = "Default Health System"
    factory.user("learner", email="pharm@example.org", org=org)
    edited = copy_valid(tmp_path / "edited")
    yaml = edited / "modules" / "safe-ordering" / "module.yaml"
    yaml.write_text(yaml.read_text().replace("pass_mark: 80", "pass_mark: 85"))
    assert "pass_mark: 85" in yaml.read_text()
    assert cli(app, "content", "import", str(edited), "--drafts").exit_code == 0
    localised = version_of(app, "safe-ordering", org)
    assert cli(app, "signoff", "holders", "add", "pharmacist", "pharm@example.org",
               ).exit_code == 0
    assert cli(app, "signoff", "reviewers", "set", "--role", "pharmacist").exit_code == 0
    assert cli(app, "signoff", "approve", "safe-ordering", "--email",
               "pharm@example.org").exit_code == 0

    again = app.test_cli_runner().invoke(setup, args=[])
    assert again.exit_code == 0, again.output
    assert "safe-ordering: kept" in again.output, again.output
    assert version_of(app, "safe-ordering", org) == localised
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SignoffApproval)) == 1
    assert cli(app, "content", "publish", "safe-ordering").exit_code == 0
    third = app.test_cli_runner().invoke(setup, args=[])
    assert third.exit_code == 0, third.output
    assert version_of(app, "safe-ordering", org)[:2] == (localised[0], "published")


@pytest.mark.parametrize("entry", ["bad", "x@example.org=", "=pharmacist", " =pharmacist"])
def test_a_person_entry_without_an_email_or_a_role_says_how_to_write_it(app, factory, entry):
    factory.organisation()
    result = cli(app, "signoff", "reviewers", "set", "--person", entry)
    assert result.exit_code == 1
    assert "write EMAIL=ROLE" in result.output, result.output
