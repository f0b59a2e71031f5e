"""Catalog queries other packages rely on, and the lesson image route."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lms_plugin.accounts.models import Organisation
from lms_plugin.accounts.services import get_or_create_organisation
from lms_plugin.catalog import services
from lms_plugin.catalog.content_format import load_content
from lms_plugin.catalog.models import ContentAsset
from lms_plugin.errors import NotFound
from lms_plugin.extensions import db
from tests.catalog.helpers import VALID, copy_valid, import_valid, sample_asset


def _org_id(name: str = "General Hospital") -> int:
    return db.session.scalar(select(Organisation.id).where(Organisation.name == name))


def test_get_module_is_organisation_scoped(app):
    import_valid(app)
    import_valid(app, "Other Health")
    with app.app_context():
        module = services.get_module(_org_id(), "safe-ordering")
        assert module.system.slug == "ehr"
        with pytest.raises(NotFound):
            services.get_module(_org_id(), "no-such-module")
        other = services.get_module(_org_id("Other Health"), "safe-ordering")
        assert other.id != module.id
        with pytest.raises(NotFound):
            services.get_module_by_id(_org_id("Other Health"), module.id)


def test_current_version_is_the_newest_published(app, tmp_path):
    root = copy_valid(tmp_path)
    import_valid(app)
    module_yaml = root / "modules" / "safe-ordering" / "module.yaml"
    with app.app_context():
        org = get_or_create_organisation("General Hospital")
        module_yaml.write_text(module_yaml.read_text().replace("First release.", "Second."))
        services.import_content(load_content(root), org)
        module_yaml.write_text(module_yaml.read_text().replace("status: published",
                                                               "status: draft")
                               .replace("Second.", "Third, in progress."))
        services.import_content(load_content(root), org)
        db.session.commit()
        module = services.get_module(org.id, "safe-ordering")
        assert [(v.number, v.status) for v in module.versions] == [
            (1, "published"), (2, "published"), (3, "draft")]
        assert services.current_version(module).number == 2
        assert services.current_version(module).change_notes == "Second."
        assert services.latest_version(module).number == 3
        draft_only = services.get_module(org.id, "bcma-scanning")
        assert services.current_version(draft_only) is None


def test_list_modules_filters(app):
    import_valid(app)
    with app.app_context():
        org_id = _org_id()
        slugs = lambda **kw: [m.slug for m in services.list_modules(org_id, **kw)]  # noqa: E731
        assert slugs() == ["safe-ordering"]  # the draft-only module is not listed
        # ordered by title: "Order entry…" before "Scanning…"
        assert slugs(include_unpublished=True) == ["safe-ordering", "bcma-scanning"]
        assert slugs(system="ehr") == ["safe-ordering"]
        assert slugs(system="bcma") == []
        assert slugs(system="bcma", include_unpublished=True) == ["bcma-scanning"]
        assert slugs(audience="Nurse") == ["safe-ordering"]
        assert slugs(audience="unit clerk") == []
        assert slugs(max_minutes=20) == ["safe-ordering"]
        assert slugs(max_minutes=19) == []
        assert slugs(q="SAFE ordering") == ["safe-ordering"]
        assert slugs(q="weight-based") == []
        assert slugs(q="right patient, dose") == ["safe-ordering"]  # summary text
        assert services.list_modules(_org_id("General Hospital") + 999) == []


def test_import_refuses_a_bundle_with_problems(app, tmp_path):
    from lms_plugin.errors import ValidationFailed

    root = copy_valid(tmp_path)
    (root / "systems" / "ehr.yaml").write_text("slug: ehr\n")
    with app.app_context():
        bundle = load_content(root)
        assert not bundle.ok
        with pytest.raises(ValidationFailed):
            services.import_content(bundle, get_or_create_organisation("General Hospital"))
        db.session.rollback()


def test_asset_route_serves_the_image_to_its_organisation_only(app, client, login_as, factory):
    module_id, path = sample_asset(app)
    anonymous = client.get(f"/content/{module_id}/{path}")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]
    login_as("learner")
    response = client.get(f"/content/{module_id}/{path}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.data == (VALID / "modules" / "safe-ordering" / path).read_bytes()
    etag = response.headers["ETag"]
    assert client.get(f"/content/{module_id}/{path}",
                      headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/content/{module_id}/images/nothing.png").status_code == 404
    assert client.get(f"/content/{module_id + 999}/{path}").status_code == 404
    with app.app_context():
        sha = db.session.scalar(select(ContentAsset.sha256))
    assert client.get(f"/content/{module_id}/{path}?sha256={sha}").status_code == 200
    assert client.get(f"/content/{module_id}/{path}?sha256={'0' * 64}").status_code == 404

    other = app.test_client()
    from tests.conftest import login

    other_id = factory.user("admin", org="Other Health")
    assert login(other, factory.email_of(other_id)).status_code == 302
    foreign = other.get(f"/content/{module_id}/{path}", headers={"Accept": "application/json"})
    assert foreign.status_code == 404
