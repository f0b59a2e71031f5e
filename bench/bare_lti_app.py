"""The baseline for bench_launch.py: a bare pylti1p3 Flask handler that only validates.

OIDC login (pylti1p3 FlaskOIDCLogin, nonce in Flask's cookie session) and launch validation
(FlaskMessageLaunch with platform-key caching), no database, no user: what any pylti1p3 tool
pays at minimum. Configured from the BARE_LTI_CONFIG environment variable (JSON: issuer,
client_id, auth_login_url, auth_token_url, key_set_url, deployment_id, launch_url).
"""

from __future__ import annotations

import json
import os
import threading
import time

from flask import Flask, jsonify
from pylti1p3.contrib.flask import (
    FlaskCacheDataStorage,
    FlaskMessageLaunch,
    FlaskOIDCLogin,
    FlaskRequest,
)
from pylti1p3.tool_config import ToolConfDict


class _MemoryCache:
    """Enough of a cache for pylti1p3's key caching (per worker process)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._data.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def set(self, key, value, exp=None):
        with self._lock:
            self._data[key] = (time.monotonic() + (exp or 3600), value)


def create_app() -> Flask:
    conf = json.loads(os.environ["BARE_LTI_CONFIG"])
    tool_conf = ToolConfDict({conf["issuer"]: [{
        "default": True, "client_id": conf["client_id"],
        "auth_login_url": conf["auth_login_url"], "auth_token_url": conf["auth_token_url"],
        "key_set_url": conf["key_set_url"], "deployment_ids": [conf["deployment_id"]],
    }]})
    app = Flask(__name__)
    app.secret_key = "bare-bench-secret-key"
    cache = _MemoryCache()

    @app.route("/lti/login", methods=["GET", "POST"])
    def login():
        return FlaskOIDCLogin(FlaskRequest(), tool_conf).redirect(conf["launch_url"])

    @app.route("/lti/launch", methods=["POST"])
    def launch():
        message_launch = FlaskMessageLaunch(FlaskRequest(), tool_conf)
        message_launch.set_public_key_caching(FlaskCacheDataStorage(cache), 3600)
        data = message_launch.get_launch_data()
        return jsonify({"sub": data["sub"]})

    return app
