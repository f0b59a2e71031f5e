"""outbound.py's one exception for the demo LMS: with ``LMS_DEMO`` on, URLs under the tool's
own ``<LMS_BASE_URL>/demo/`` may reach its (loopback) address even when private addresses
are blocked; nothing else changes, and with the demo off they are refused too."""

from __future__ import annotations

import pytest

from lms_plugin import outbound
from tests.demo.helpers import demo_app, served


@pytest.fixture(scope="module")
def live(app):
    application = demo_app(app, LMS_OUTBOUND_BLOCK_PRIVATE=True)
    with served(application) as url:
        yield application, url


def _get(app, url: str) -> outbound.Response:
    with app.app_context():
        return outbound.request("GET", url, outbound.policy_for([url]))


def test_the_demo_endpoints_are_reachable_when_the_demo_is_on(live):
    app, url = live
    assert _get(app, url + "/demo/jwks").status == 200


@pytest.mark.parametrize("path", ["/lti/jwks", "/demo/../lti/jwks", "/demo/%2e%2e/lti/jwks",
                                  "/healthz"])
def test_other_paths_of_the_same_origin_stay_refused(live, path):
    app, url = live
    with pytest.raises(outbound.OutboundRefused, match="loopback, private or reserved"):
        _get(app, url + path)


def test_another_port_or_host_stays_refused(live, app):
    demo, url = live
    other = demo_app(app, LMS_OUTBOUND_BLOCK_PRIVATE=True)
    with served(other) as other_url:  # its own base URL changes; restore ours after
        demo.config["LMS_BASE_URL"] = url
        with pytest.raises(outbound.OutboundRefused):
            _get(demo, other_url + "/demo/jwks")
    localhost = url.replace("127.0.0.1", "localhost")
    with pytest.raises(outbound.OutboundRefused):
        _get(demo, localhost + "/demo/jwks")


def test_with_the_demo_off_the_same_url_is_refused(live):
    app, url = live
    app.config["LMS_DEMO"] = False
    try:
        with pytest.raises(outbound.OutboundRefused):
            _get(app, url + "/demo/jwks")
    finally:
        app.config["LMS_DEMO"] = True


def test_the_rule_is_exact_origin_and_path():
    policy = outbound.OutboundPolicy(hosts=frozenset({"tool.test"}), block_private=True,
                                     demo_origin=("https", "tool.test", 443))
    split = outbound.urlsplit
    assert policy.is_demo_url(split("https://tool.test/demo/token"))
    assert policy.is_demo_url(split("https://TOOL.test:443/demo/lineitems/1/scores"))
    assert not policy.is_demo_url(split("http://tool.test/demo/token"))  # other scheme
    assert not policy.is_demo_url(split("https://tool.test:8443/demo/token"))
    assert not policy.is_demo_url(split("https://tool.test/demonstration"))
    assert not outbound.OutboundPolicy(hosts=frozenset()).is_demo_url(
        split("https://tool.test/demo/token"))
