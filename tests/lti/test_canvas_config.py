"""The Canvas developer-key JSON configuration at /lti/config/canvas.json."""

from __future__ import annotations

from lms_plugin.lti import registration

AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


def _config(client) -> dict:
    response = client.get("/lti/config/canvas.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_canvas_config_is_public_and_points_at_the_tool(client):
    config = _config(client)  # no session: Canvas fetches it server-side

    assert config["title"] == registration.TOOL_TITLE
    assert config["description"]
    assert config["oidc_initiation_url"] == "http://tool.test/lti/login"
    assert config["target_link_uri"] == "http://tool.test/lti/launch"
    assert config["public_jwk_url"] == "http://tool.test/lti/jwks"
    assert set(config["scopes"]) == {
        AGS + "lineitem", AGS + "lineitem.readonly", AGS + "result.readonly", AGS + "score",
        NRPS,
    }


def test_canvas_extension_placements_and_privacy(client):
    (extension,) = _config(client)["extensions"]

    assert extension["platform"] == "canvas.instructure.com"
    assert extension["privacy_level"] == "public"
    assert extension["domain"] == "tool.test"
    placements = {p["placement"]: p for p in extension["settings"]["placements"]}
    assert set(placements) == {"course_navigation", "link_selection", "assignment_selection"}
    assert placements["course_navigation"]["message_type"] == "LtiResourceLinkRequest"
    assert placements["course_navigation"]["target_link_uri"] == "http://tool.test/lti/launch"
    for name in ("link_selection", "assignment_selection"):
        assert placements[name]["message_type"] == "LtiDeepLinkingRequest"
        assert placements[name]["target_link_uri"] == "http://tool.test/lti/launch"
    assert all(p["text"] for p in placements.values())


def test_canvas_custom_fields_map_canvas_variables(client):
    fields = _config(client)["custom_fields"]

    assert fields["department"] == "$Canvas.account.name"
    assert fields["person_sis_id"] == "$Person.sourcedId"
    assert all(value.startswith("$") for value in fields.values())
    assert "module" not in fields  # chosen per link (deep linking or a custom parameter)


def test_canvas_config_follows_the_base_url(app):
    with app.test_request_context():
        config = registration.canvas_config("https://training.example-health.org")
    assert config["oidc_initiation_url"] == "https://training.example-health.org/lti/login"
    assert config["extensions"][0]["domain"] == "training.example-health.org"
