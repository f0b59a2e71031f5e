"""Configuration from environment variables (12-factor) with safe development defaults.

Nothing here runs at import time: :func:`load_config` is called by ``create_app`` so tests
and the CLI can pass their own environment.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message is one line meant for an operator."""


#: Every environment variable the application reads, with its default and meaning.
#: README.md's configuration table mirrors this list (a test keeps them in step).
ENV_VARS: dict[str, str] = {
    "LMS_ENV": "development | production (production refuses unsafe defaults)",
    "DATABASE_URL": "SQLAlchemy URL; default a SQLite file under instance/",
    "REDIS_URL": "optional Redis URL for cache, LTI state/nonces, rate limits and jobs",
    "LMS_BASE_URL": "the tool's public URL given to LMSs (default http://127.0.0.1:5000)",
    "SECRET_KEY": "session signing key; generated under instance/ in development",
    "LMS_PROXY_FIX": "number of trusted reverse proxies setting X-Forwarded-* (default 0)",
    "LMS_DEFAULT_TIMEZONE": "time zone for new organisations (default America/New_York)",
    "LMS_LOGIN_RATE_LIMIT": "failed-login limit per account and per address (default 5/minute)",
    # Read where used, by lms_plugin.jobs.services.setting (app config first, then here):
    "LMS_JOB_GIVE_UP_AFTER": "age after which a failing background job is marked failed",
    "LMS_JOB_BACKOFF_BASE": "first retry delay of a background job",
    "LMS_JOB_BACKOFF_CAP": "longest retry delay of a background job",
    "LMS_JOB_LEASE": "how long a running job may stay claimed before another worker takes it",
    "LMS_JOB_POLL_INTERVAL": "idle sleep of the in-process worker",
    "LMS_JOB_QUEUE": "RQ queue name when REDIS_URL is set",
    "LMS_JOB_KEEP": "age after which succeeded and superseded background jobs are deleted",
    "LMS_ROSTER_MIN_SHARE": "a full roster listing fewer than this share of the active members "
                            "is suspicious: nobody is removed (default 0.5)",
}


def _secret_key(instance_path: Path, production: bool, env: Mapping[str, str]) -> str:
    key = env.get("SECRET_KEY", "").strip()
    if key:
        if production and len(key) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters when LMS_ENV=production")
        return key
    if production:
        raise ConfigError("SECRET_KEY is not set; it is required when LMS_ENV=production")
    # Development: generate once and keep it under instance/ so sessions survive restarts.
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _database_url(instance_path: Path, env: Mapping[str, str]) -> str:
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        instance_path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{instance_path / 'lms_plugin.db'}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is malformed: {url!r}") from None
    if parsed.drivername == "postgresql" or parsed.drivername == "postgres":
        # psycopg (v3) is the driver we ship; accept the bare scheme operators often paste.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}:
        raise ConfigError(
            f"DATABASE_URL uses unsupported driver {parsed.drivername!r} "
            "(use postgresql+psycopg://… or sqlite:///…)"
        )
    return parsed.render_as_string(hide_password=False)


def _share(raw: str, name: str, default: float) -> float:
    """A fraction 0..1 from ``"0.5"`` or ``"50%"``; empty = ``default``."""
    raw = (raw or "").strip()
    if not raw:
        return default
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a fraction such as 0.5 (or 50%), not {raw!r}") \
            from None
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be between 0 and 1 (0% and 100%), not {raw!r}")
    return value


def load_config(instance_path: str | Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config from ``env`` (default ``os.environ``); raise ConfigError if unsafe."""
    env = os.environ if env is None else env
    instance = Path(instance_path)
    lms_env = env.get("LMS_ENV", "development").strip() or "development"
    if lms_env not in {"development", "production", "testing"}:
        raise ConfigError(f"LMS_ENV must be development or production, not {lms_env!r}")
    production = lms_env == "production"

    db_url = _database_url(instance, env)
    base_url = env.get("LMS_BASE_URL", "http://127.0.0.1:5000").strip().rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"LMS_BASE_URL must start with http:// or https://, not {base_url!r}")
    if production:
        if db_url.startswith("sqlite"):
            raise ConfigError("DATABASE_URL must point at PostgreSQL when LMS_ENV=production")
        if not base_url.startswith("https://"):
            raise ConfigError("LMS_BASE_URL must use https:// when LMS_ENV=production")
    try:
        proxy_fix = int(env.get("LMS_PROXY_FIX", "0") or 0)
    except ValueError:
        raise ConfigError("LMS_PROXY_FIX must be a whole number of proxies") from None

    min_share = _share(env.get("LMS_ROSTER_MIN_SHARE", ""), "LMS_ROSTER_MIN_SHARE", 0.5)

    https = base_url.startswith("https://")
    return {
        "LMS_ENV": lms_env,
        "SECRET_KEY": _secret_key(instance, production, env),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL", "").strip() or None,
        "LMS_BASE_URL": base_url,
        "LMS_PROXY_FIX": proxy_fix,
        "LMS_DEFAULT_TIMEZONE": env.get("LMS_DEFAULT_TIMEZONE", "America/New_York"),
        "LMS_LOGIN_RATE_LIMIT": env.get("LMS_LOGIN_RATE_LIMIT", "5/minute"),
        "LMS_ROSTER_MIN_SHARE": min_share,
        # The tool lives in LMS iframes: over HTTPS cookies must be SameSite=None; Secure.
        "SESSION_COOKIE_SECURE": https,
        "SESSION_COOKIE_SAMESITE": "None" if https else "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": https,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead; long lessons must not expire
        "WTF_CSRF_SSL_STRICT": False,  # Referer is stripped inside LMS iframes
        "MAX_CONTENT_LENGTH": 20 * 1024 * 1024,
    }
