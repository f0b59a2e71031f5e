"""Flask extensions, created unbound here and bound to the app in ``create_app``."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from lms_plugin.db import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


def _limiter_key() -> str:
    return get_remote_address() or request.remote_addr or "unknown"


# Storage is chosen in create_app (Redis when REDIS_URL is set, so limits hold across workers).
limiter = Limiter(key_func=_limiter_key, default_limits=[], headers_enabled=False)
