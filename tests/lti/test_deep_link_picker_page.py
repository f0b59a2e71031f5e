"""The picker page (issue 12.5): "Add" with nothing chosen says so on the page (422, the
message tied to the fieldset) and sends the LMS nothing; the filters survive; the classes
the template uses are styled by its own stylesheet."""

from __future__ import annotations

import re
from pathlib import Path

import lms_plugin
from tests.lti.test_deep_linking import _answer, _csrf, _dl_launch, modules  # noqa: F401

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"


def test_add_with_nothing_chosen_shows_a_message_and_sends_nothing(client, launcher, moodle,
                                                                   modules):  # noqa: F811
    _dl_launch(launcher, client, moodle)
    html = client.get("/lti/deep-link?max_minutes=30").get_data(as_text=True)
    assert 'name="max_minutes" value="30"' in html  # the filter rides along with the post
    refused = client.post("/lti/deep-link", data={"csrf_token": _csrf(html),
                                                  "max_minutes": "30"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "lti-deep-link-return" not in page and 'name="JWT"' not in page
    assert 'aria-describedby="module-error"' in page
    assert "Choose at least one module to add" in page
    assert 'id="module-cpoe-basics"' in page  # still filtered (20 min, not 45)
    assert 'id="module-bcma-scanning"' not in page
    # The request is still pending: choosing a module now answers the LMS.
    answer = client.post("/lti/deep-link", data={"csrf_token": _csrf(page),
                                                 "module": "cpoe-basics"})
    assert answer.status_code == 200
    items = _answer(client, answer)["claims"][DL + "content_items"]
    assert [item["custom"]["module"] for item in items] == ["cpoe-basics"]


def test_every_class_of_the_picker_templates_is_styled():
    root = Path(lms_plugin.__file__).parent
    templates = [root / "lti/templates/lti/deep_link_picker.html",
                 root / "lti/templates/lti/deep_link_return.html"]
    css = (root / "static/app.css").read_text() + (root / "static/lti/picker.css").read_text()
    classes = set()
    for template in templates:
        for value in re.findall(r'class="([^"{]+)"', template.read_text()):
            classes.update(value.split())
    unstyled = sorted(c for c in classes if not re.search(rf"\.{re.escape(c)}\b", css))
    assert not unstyled, f"classes without a style: {unstyled}"
