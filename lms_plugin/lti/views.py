"""LTI endpoints: OIDC login, launch, the tool's JWKS.

All PUBLIC and exempt from CSRF: the LTI security framework (state, nonce, signed id_token)
protects them instead. Every refusal is a clear 400/401/403 page, logged with its reason;
nothing is written when a launch is refused.
"""

from __future__ import annotations

import hashlib
import hmac
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
from pylti1p3.contrib.flask import FlaskRequest
from pylti1p3.exception import LtiException, OIDCException

from lms_plugin.accounts.signin import sign_in
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


def storage_proof(state: str, id_token: str) -> str:
    """The value the storage-check page (``storage_launch.html``) posts back: an HMAC of the
    state and the id_token under ``SECRET_KEY``, so the second post is bound to the page the
    tool served for this very launch (not just to a state an attacker may hold)."""
    digest = hashlib.sha256(id_token.encode()).hexdigest()
    return hmac.new(current_app.config["SECRET_KEY"].encode(),
                    f"lti-storage-launch\0{state}\0{digest}".encode(),
                    hashlib.sha256).hexdigest()


def _own_origins() -> set[str]:
    base = urlsplit(current_app.config["LMS_BASE_URL"])
    return {f"{base.scheme}://{base.netloc}", request.host_url.rstrip("/")}


def from_own_page() -> bool:
    """Did the browser send this POST from one of the tool's own pages? A browser always
    sends ``Origin`` on a form POST and ``Sec-Fetch-Site`` where it supports Fetch Metadata,
    and a page of another site can forge neither; a request carrying neither is refused."""
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if origin is None and site is None:
        return False
    if origin is not None and origin not in _own_origins():
        return False
    return site is None or site == "same-origin"


def storage_post_refusal(state: str, id_token: str, proof: str | None) -> str | None:
    """Why the second post of the postMessage-storage launch is refused, or None.

    The storage path replaces the state cookie (1EdTech "OIDC Login with LTI Client Side
    postMessages": the tool checks the state in the *platform's* storage, which only the
    person's own browser can read). The server cannot see that check, so it accepts the
    result only from the tool's own page (same origin: a site that holds someone else's
    unused id_token cannot make a victim's browser post it from there) carrying the proof
    that page was given for this state and id_token (:func:`storage_proof`). Otherwise a
    posted id_token would sign the victim in as the attacker (login CSRF, issue 10.4)."""
    if not from_own_page():
        return "the postMessage storage check must be posted from the tool's own page"
    if not proof or not hmac.compare_digest(proof, storage_proof(state, id_token)):
        return "the postMessage storage check carries no valid proof for this launch"
    return None


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
    if not (_param("iss") or _param("login_hint") or _param("client_id")):
        # Opened directly (a bookmark, a pasted link): say what the address is for.
        return error_response(
            400, "This is the tool's LTI sign-in address (the OpenID Connect login "
                 "initiation URL). An LMS opens it at the start of every launch, with the "
                 "parameters that say which LMS and which person; opened on its own it has "
                 "nothing to sign in. To open the training, use its link in your Moodle or "
                 "Canvas course. An LMS administrator enters this address as the tool's "
                 "Initiate login URL (docs/moodle.md, docs/canvas.md).",
            title="LTI sign-in address")
    store = LtiStore.for_app()
    storage_target = _param("lti_storage_target")
    oidc = ToolLogin(FlaskRequest(), DbToolConf(), launch_data_storage=store)
    launch_url = services.tool_urls(current_app.config["LMS_BASE_URL"])["launch_url"]
    try:
        if (current_app.config["LTI_COOKIE_CHECK"] and not storage_target
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
        proof = request.form.get("lti_storage_proof")
        if storage and not proof:
            # No cookie came back (third-party cookies blocked): check the state in the
            # platform's postMessage storage from the browser, then post here again from
            # this page, with its proof.
            response = current_app.make_response(render_template(
                "lti/storage_launch.html", id_token=id_token, state=state,
                target=storage.get("target"), origin=storage.get("origin"),
                proof=storage_proof(state, id_token), action=request.base_url))
            response.headers["Cache-Control"] = "no-store"
            return response
        if storage:
            refused = storage_post_refusal(state, id_token, proof)
            if refused:
                return _refuse(403, refused, "launch")
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
            deep_link = deep_linking.start_request(validator.registration.platform_id, claims,
                                                   validator.registration.role_mapping)
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
    sign_in(outcome.user)  # a fresh server-side session (revocable; idle and absolute expiry)
    session["lti"] = {**outcome.session_data(), **launch_service.presentation(claims)}
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
