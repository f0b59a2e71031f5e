from __future__ import annotations

from flask_migrate import stamp

from lms_plugin import health
from lms_plugin.extensions import db


def test_landing_page_says_what_the_tool_is(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "LTI 1.3" in page and "Connect your LMS" in page
    assert 'href="/static/app.css"' in page  # assets served locally, no CDN
    # No LTI context: nobody may frame it (LTI pages: tests/test_headers.py)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_healthz_reports_pending_migrations_then_ok(app, client):
    # The test schema is made with create_all: not stamped, so migrations are pending.
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["database"] == "ok"
    assert body["migrations"].startswith("pending")
    assert body["redis"] == ("ok" if app.config["REDIS_URL"] else "not configured")
    with app.app_context():
        stamp(directory=str(health.MIGRATIONS_DIR), revision="head")
    try:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.get_json() == {
            "status": "ok", "database": "ok", "migrations": "at head",
            "redis": "ok" if app.config["REDIS_URL"] else "not configured",
            # reported, not a reason for 503 (tests/jobs/test_heartbeat.py)
            "worker": "never seen", "jobs_due": 0}
    finally:
        with app.app_context(), db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE alembic_version")


def test_healthz_reports_unreachable_redis(app, client):
    configured = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    try:
        body = client.get("/healthz").get_json()
    finally:
        app.config["REDIS_URL"] = configured
    assert body["redis"].startswith("unreachable")
    assert body["status"] == "degraded"


def test_unknown_page_is_friendly_html_or_problem_json(client):
    html = client.get("/no/such/page")
    assert html.status_code == 404
    assert "There is nothing at this address" in html.get_data(as_text=True)
    problem = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert problem.status_code == 404
    assert problem.mimetype == "application/problem+json"
    assert problem.get_json() == {"type": "about:blank", "title": "Not found", "status": 404,
                                  "detail": "There is nothing at this address."}


def test_wrong_method_is_405_with_allow_header(client):
    response = client.delete("/auth/login")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "cannot be used that way" in response.get_data(as_text=True)


def test_unexpected_error_is_a_friendly_500_without_details(database_url):
    from lms_plugin import create_app
    from lms_plugin.authz import PUBLIC, allow

    fresh = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": "x" * 40})

    @allow(PUBLIC)
    def boom():
        raise RuntimeError("secret internal detail")

    fresh.add_url_rule("/__boom", "boom_for_test", boom)
    response = fresh.test_client().get("/__boom")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page
    assert "secret internal detail" not in page
    problem = fresh.test_client().get("/__boom", headers={"Accept": "application/json"})
    assert problem.get_json()["status"] == 500
