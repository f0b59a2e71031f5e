"""LTI endpoints: OIDC login, launch, the tool's JWKS.

All PUBLIC and exempt from CSRF: the LTI security framework (state, nonce, signed id_token)
protects them instead. Every refusal is a clear 400/401/403 page, logged with its reason;
nothing is written when a launch is refused.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
)
from flask_login import login_user
from pylti1p3.contrib.flask import FlaskRequest
from pylti1p3.exception import LtiException, OIDCException

from lms_plugin.authz import PUBLIC, allow
from lms_plugin.errors import error_response
from lms_plugin.extensions import csrf, db, limiter
from lms_plugin.lti import deep_linking, keys, services
from lms_plugin.lti import launch as launch_service
from lms_plugin.lti.store import LtiStore
from lms_plugin.lti.tool import CLAIM, DbToolConf, LaunchRejected, LaunchValidator, ToolLogin

log = logging.getLogger(__name__)
bp = Blueprint("lti", __name__, url_prefix="/lti", template_folder="templates")

STORAGE_KEY = "storage-"  # store key prefix: state issued with platform postMessage storage
COOKIE_CHECK_MSG = (
    "Your browser blocks cookies inside the LMS page, so the training cannot open here."
)


def _refuse(status: int, reason: str, where: str):
    db.session.rollback()
    log.warning("LTI %s refused (%s) from %s: %s", where, status, request.remote_addr, reason)
    return error_response(status, f"The LMS launch was refused: {reason}.",
                          title="LTI launch refused")


def _param(name: str) -> str | None:
    source = request.args if request.method == "GET" else request.form
    return source.get(name) or request.args.get(name)


#: Endpoints the rate limiter leaves alone: they have no limits of their own (the LTI
#: security framework protects them) and the limiter's per-request bookkeeping was a
#: measurable share of a launch (``bench/README.md``).
UNLIMITED_ENDPOINTS = frozenset({"lti.login", "lti.launch", "lti.jwks"})


@limiter.request_filter
def _not_rate_limited() -> bool:
    return request.endpoint in UNLIMITED_ENDPOINTS


@bp.route("/login", methods=["GET", "POST"])
@csrf.exempt
@allow(PUBLIC)
def login():
    """OIDC third-party-initiated login: check the registration, then send the browser to the
    platform's auth endpoint with a fresh state (cookie) and a signed nonce (nothing stored)."""
    store = LtiStore.for_app()
    storage_target = _param("lti_storage_target")
    oidc = ToolLogin(FlaskRequest(), DbToolConf(), launch_data_storage=store)
    launch_url = services.tool_urls(current_app.config["LMS_BASE_URL"])["launch_url"]
    try:
        if (current_app.config.get("LTI_COOKIE_CHECK", True) and not storage_target
                and not _param("lti1p3_new_window")):
            oidc.validate_oidc_login()  # refuse unknown/disabled registrations right away
            return _cookie_check_page()
        redirect_obj = oidc.get_redirect_object(launch_url)
    except LaunchRejected as exc:
        return _refuse(exc.status, exc.reason, "login")
    except (OIDCException, LtiException) as exc:
        return _refuse(400, str(exc), "login")

    auth_url = redirect_obj.get_redirect_url()
    if storage_target:
        query = parse_qs(urlsplit(auth_url).query)
        state, nonce = query["state"][0], query["nonce"][0]
        platform_origin = "{0.scheme}://{0.netloc}".format(urlsplit(auth_url))
        store.set_value(STORAGE_KEY + state, {"target": storage_target,
                                              "origin": platform_origin})
        response = current_app.make_response(render_template(
            "lti/storage_login.html", auth_url=auth_url, state=state, nonce=nonce,
            target=storage_target, platform_origin=platform_origin))
        oidc._cookie_service.update_response(response)  # the cookie still helps if allowed
    else:
        response = redirect_obj.do_redirect()
    if not current_app.config.get("REDIS_URL"):
        # The postMessage storage entry (a login writes nothing else: the nonce is signed,
        # the registration may come from the cache). Expired rows are deleted by the
        # scheduled "lti.purge_state" job (lti/tasks.py), never by a login.
        db.session.commit()
    response.headers["Cache-Control"] = "no-store"
    return response


def _cookie_check_page():
    """pylti1p3's cookie check, served with our own local JS (the CSP forbids inline script):
    it tests that a cookie can be set in this frame, then reloads with lti1p3_new_window=1,
    or offers to open the training in a new tab where first-party cookies work."""
    params = dict(request.args.items() if request.method == "GET" else request.form.items())
    params["lti1p3_new_window"] = "1"
    url = request.base_url + "?" + urlencode(params)
    response = current_app.make_response(render_template(
        "lti/cookie_check.html", continue_url=url, message=COOKIE_CHECK_MSG,
        secure=request.is_secure))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/launch", methods=["POST"])
@csrf.exempt
@allow(PUBLIC)
def launch():
    """Validate the id_token (every check in :mod:`lms_plugin.lti.tool`), then sign the
    person in and send them to the module the link names, or to their home page."""
    store = LtiStore.for_app()
    state = request.form.get("state") or ""
    id_token = request.form.get("id_token") or ""
    if not id_token:
        return _refuse(400, "no id_token was posted", "launch")
    if not state:
        return _refuse(401, "no state was posted", "launch")

    state_verified = False
    if not request.cookies.get(f"lti1p3-{state}"):
        storage = store.get_value(STORAGE_KEY + state)
        if storage and request.form.get("lti_storage_checked") != "1":
            # No cookie came back (third-party cookies blocked): check the state in the
            # platform's postMessage storage from the browser, then post here again.
            response = current_app.make_response(render_template(
                "lti/storage_launch.html", id_token=id_token, state=state,
                target=storage.get("target"), origin=storage.get("origin"),
                action=request.base_url))
            response.headers["Cache-Control"] = "no-store"
            return response
        if storage:
            state_verified = store.consume(STORAGE_KEY + state)

    validator = LaunchValidator(FlaskRequest(), DbToolConf(), launch_data_storage=store)
    validator.state_verified = state_verified
    try:
        try:
            validator.validate()
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # A well-signed token is never shaped like this; a forged one may be.
            raise LaunchRejected(f"malformed id_token ({type(exc).__name__})", 400) from exc
        claims = validator.claims()
        message_type = claims.get(CLAIM + "message_type")
        deep_link = None
        if message_type == "LtiDeepLinkingRequest":  # 403 for learners, nothing written
            deep_link = deep_linking.start_request(validator.registration.platform_id, claims)
        elif message_type != "LtiResourceLinkRequest":
            return _refuse(400, f"message type {message_type} is not supported", "launch")
        outcome = launch_service.complete_launch(validator.registration.ref, claims,
                                                 validator.lookup)
        if not outcome.user.active:
            return _refuse(403, "this account has been deactivated in the training tool",
                           "launch")
    except LaunchRejected as exc:
        return _refuse(exc.status, exc.reason, "launch")
    except (LtiException, OIDCException) as exc:
        return _refuse(400, str(exc), "launch")
    # Sign in before the commit: after it the user row is expired and would be re-read.
    session.clear()
    login_user(outcome.user)
    session["lti"] = outcome.session_data()
    db.session.commit()
    if deep_link is not None:
        session["lti_deep_link"] = deep_link
        return redirect(request.script_root + "/lti/deep-link")
    return redirect(request.script_root + outcome.redirect_path)


@bp.route("/jwks")
@allow(PUBLIC)
def jwks():
    """The tool's public keys (``kid`` on each): platforms verify our signed messages here."""
    if not keys.published_keys():
        keys.ensure_key()
        db.session.commit()
    response = jsonify(keys.public_jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
