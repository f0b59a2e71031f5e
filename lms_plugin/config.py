"""Configuration from environment variables (12-factor) with safe development defaults.

Nothing here runs at import time: :func:`load_config` is called by ``create_app`` so tests
and the CLI can pass their own environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any


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
    "LMS_PROXY_FIX": "number of reverse proxies in front of the tool (X-Forwarded-* hops)",
    "LMS_TRUSTED_PROXIES": "comma-separated addresses/CIDRs whose X-Forwarded-* are trusted",
    "LMS_DEFAULT_TIMEZONE": "time zone for new organisations (default America/New_York)",
    "LMS_LOGIN_RATE_LIMIT": "failed sign-ins allowed per account and address pair (tiers)",
    "LMS_LOGIN_ADDRESS_LIMIT": "failed sign-ins allowed per address, all accounts together",
    "LMS_FRAME_ANCESTORS": "extra origins allowed to frame LTI pages (a hosted Canvas domain)",
    "LMS_SESSION_IDLE": "a signed-in session ends after this long without a request (30m)",
    "LMS_SESSION_MAX": "a signed-in session ends this long after sign-in, active or not (12h)",
    "LMS_JOB_GIVE_UP_AFTER": "age after which a failing background job is marked failed",
    "LMS_JOB_BACKOFF_BASE": "first retry delay of a background job",
    "LMS_JOB_BACKOFF_CAP": "longest retry delay of a background job",
    "LMS_JOB_LEASE": "how long a running job may stay claimed before another worker takes it",
    "LMS_JOB_POLL_INTERVAL": "idle sleep of the in-process worker",
    "LMS_JOB_QUEUE": "RQ queue name when REDIS_URL is set",
    "LMS_WORKER_STALE": "warn when jobs are due and no worker was seen for this long (3m)",
    "LMS_OUTBOUND_DEADLINE": "total deadline of one outbound HTTP call (default 10s)",
    "LMS_OUTBOUND_MAX_BYTES": "largest answer an outbound HTTP call reads (default 2097152)",
    "LMS_OUTBOUND_BLOCK_PRIVATE": "1 refuses non-public addresses (always on in production)",
    "LMS_OUTBOUND_PRIVATE_NETWORKS": "networks (CIDR, comma-separated) an intranet LMS uses",
    "LMS_JOB_KEEP": "age after which succeeded and superseded background jobs are deleted",
    "LMS_ROSTER_MIN_SHARE": "a full roster listing fewer than this share of the active members "
                            "is suspicious: nobody is removed (default 0.5)",
    "LMS_PASSWORD_HASH_PROFILE": "argon2 cost of local passwords: standard (default) or fast "
                                 "(tests only; refused when LMS_ENV=production)",
    "LMS_DEMO": "1 serves the built-in demo LMS at /demo (make run sets it; off by default; "
                "refused when LMS_ENV=production unless set to 'production')",
    "LTI_CLOCK_SKEW": "seconds of clock difference allowed on an id_token's exp/iat (60)",
    "LTI_REGISTRATION_CACHE_SECONDS": "how long a process reuses platform registrations for "
                                      "the OIDC login (5; 0 = no cache)",
    "LTI_COOKIE_CHECK": "1 (default) shows the cookie check before the OIDC login redirect",
    "LTI_STORE_PREFIX": "Redis key prefix of LTI state, nonces and access tokens (lms:lti:)",
    "SESSION_STORE_PREFIX": "Redis key prefix of server-side sessions (lms:session:)",
    "MAIL_BACKEND": "file (default: .eml files under MAIL_FILE_DIR, nothing is sent) or smtp",
    "MAIL_FILE_DIR": "folder of the file backend's .eml files (default instance/mail)",
    "MAIL_SERVER": "SMTP server host name (required with MAIL_BACKEND=smtp)",
    "MAIL_PORT": "SMTP port (default 587 with MAIL_USE_TLS, else 25)",
    "MAIL_USE_TLS": "1 upgrades the SMTP connection with STARTTLS before any login (default 0)",
    "MAIL_USERNAME": "SMTP login name (optional; with MAIL_PASSWORD)",
    "MAIL_PASSWORD": "SMTP password (with MAIL_USERNAME)",
    "MAIL_FROM": "sender address of the tool's mail, e.g. Training <no-reply@hospital.org>",
    "MAIL_TIMEOUT": "total deadline of one SMTP delivery, connect to last reply (default 30s)",
}


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, value: str | float, *, allow_zero: bool = False) -> timedelta:
    """``90``, ``"90s"``, ``"30m"``, ``"12h"`` or ``"2d"`` (or a number of seconds, as
    factory overrides pass) as a timedelta; positive, or zero too with ``allow_zero``.

    The one duration parser of the application (settings, ``outbox prune --older-than``).
    Raises ConfigError naming ``name`` for anything else (negative values included).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds: float | None = float(value)
    else:
        match = _DURATION.match(str(value))
        seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else None
    if seconds is None or seconds < 0 or (seconds == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"{name}: {value!r} is not a duration; use a {kind} number of "
                          "seconds or 90s, 30m, 12h, 2d")
    return timedelta(seconds=seconds)


#: The background-job settings and their defaults in seconds (meanings in :data:`ENV_VARS`).
#: Parsed by :func:`load_config`; factory overrides (tests) go through ``jobs.outbox.setting``.
JOB_SETTINGS: dict[str, float] = {
    "LMS_JOB_GIVE_UP_AFTER": 24 * 3600,
    "LMS_JOB_BACKOFF_BASE": 2,
    "LMS_JOB_BACKOFF_CAP": 15 * 60,
    "LMS_JOB_LEASE": 5 * 60,
    "LMS_JOB_POLL_INTERVAL": 1,
    "LMS_JOB_KEEP": 30 * 86400,
}
DEFAULT_JOB_QUEUE = "lms-outbox"


def job_seconds(name: str, value: str | float | None) -> float:
    """A job setting (:data:`JOB_SETTINGS`) in seconds: ``value`` parsed (zero allowed), or
    the default when it is None or blank. Raises ConfigError naming the setting."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return float(JOB_SETTINGS[name])
    return parse_duration(name, value, allow_zero=True).total_seconds()


#: LMS_PASSWORD_HASH_PROFILE -> argon2-cffi's parameter profile (``argon2.profiles``).
#: ``standard`` is argon2-cffi's default, RFC 9106 section 4's second recommendation
#: (argon2id, t=3, 64 MiB, p=4); ``fast`` is its CHEAPEST (t=1, 8 KiB): only for tests,
#: where full-cost hashing was a large share of the suite's time. A hash made under one
#: profile verifies under the other; the standard profile re-hashes a cheap one at the next
#: sign-in (``check_needs_rehash``).
PASSWORD_HASH_PROFILES: dict[str, str] = {"standard": "RFC_9106_LOW_MEMORY", "fast": "CHEAPEST"}


def password_hash_parameters(profile: str) -> Any:
    """The ``argon2.Parameters`` of a profile name from :data:`PASSWORD_HASH_PROFILES`."""
    from argon2 import profiles

    return getattr(profiles, PASSWORD_HASH_PROFILES[profile])


def _flag(name: str, env: Mapping[str, str], default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")
    return raw in ("1", "true", "yes")


def _number(name: str, env: Mapping[str, str], default: float) -> float:
    """A number of seconds of zero or more (``60``, ``2.5``); ``default`` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{name} must be a number of seconds (0 or more), not {raw!r}")
    return value


def _lti(env: Mapping[str, str]) -> dict[str, Any]:
    """The LTI launch settings (:mod:`lms_plugin.lti.tool`, ``lti.views``, ``lti.store``)."""
    return {
        # PyJWT's leeway on exp/iat/nbf: LMS and tool clocks drift a little.
        "LTI_CLOCK_SKEW": _number("LTI_CLOCK_SKEW", env, 60.0),
        # The OIDC login's per-process registration cache (the launch never uses it).
        "LTI_REGISTRATION_CACHE_SECONDS": _number("LTI_REGISTRATION_CACHE_SECONDS", env, 5.0),
        # pylti1p3's cookie-check page (browsers that block third-party cookies in iframes).
        "LTI_COOKIE_CHECK": _flag("LTI_COOKIE_CHECK", env, True),
        "LTI_STORE_PREFIX": env.get("LTI_STORE_PREFIX", "").strip() or "lms:lti:",
    }


def parse_networks(name: str, value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated addresses or CIDRs (``10.0.0.0/8, 192.0.2.7``); ConfigError if bad."""
    networks = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            networks.append(ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP address or CIDR") from None
    return tuple(networks)


def _rate_limit(name: str, value: str) -> str:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must look like '5/minute;20/hour', not {value!r}") from None
    return value


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
    # Imported here: the CLI imports this module for ConfigError, and ``lms-plugin --help``
    # must not pay for SQLAlchemy (bench/bench_cli.py).
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

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


def _seconds(name: str, env: Mapping[str, str], default: float) -> float:
    """``10``, ``2.5``, ``500ms``, ``10s`` or ``1m`` as seconds (> 0)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?", raw)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{name} must be a positive duration like 10, 10s or 500ms, "
                          f"not {raw!r}")
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    return float(match.group(1)) * factor


def _outbound(env: Mapping[str, str], production: bool) -> dict[str, Any]:
    """The outbound HTTP rule's settings (see :mod:`lms_plugin.outbound`)."""
    raw_bytes = env.get("LMS_OUTBOUND_MAX_BYTES", "").strip()
    if raw_bytes and (not raw_bytes.isdigit() or int(raw_bytes) < 1024):
        raise ConfigError(f"LMS_OUTBOUND_MAX_BYTES must be a whole number of bytes of at "
                          f"least 1024, not {raw_bytes!r}")
    block = env.get("LMS_OUTBOUND_BLOCK_PRIVATE", "").strip().lower()
    if block not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"LMS_OUTBOUND_BLOCK_PRIVATE must be 1 or 0, not {block!r}")
    if production and block in ("0", "false", "no"):
        raise ConfigError("LMS_OUTBOUND_BLOCK_PRIVATE cannot be turned off when "
                          "LMS_ENV=production; list the LMS's network in "
                          "LMS_OUTBOUND_PRIVATE_NETWORKS instead")
    networks = []
    for item in env.get("LMS_OUTBOUND_PRIVATE_NETWORKS", "").split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"LMS_OUTBOUND_PRIVATE_NETWORKS: {item.strip()!r} is not a "
                              "network like 10.20.0.0/16") from None
    return {
        "LMS_OUTBOUND_DEADLINE": _seconds("LMS_OUTBOUND_DEADLINE", env, 10.0),
        "LMS_OUTBOUND_MAX_BYTES": int(raw_bytes) if raw_bytes else 2 * 1024 * 1024,
        "LMS_OUTBOUND_BLOCK_PRIVATE": production or block in ("1", "true", "yes"),
        "LMS_OUTBOUND_PRIVATE_NETWORKS": tuple(networks),
    }


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


def _timezone(raw: str) -> str:
    """An IANA time zone name (``Europe/Paris``) that the tz database knows (zoneinfo);
    refused at start rather than when the first organisation is created and shown a date."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = raw.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "America"
        raise ConfigError(f"LMS_DEFAULT_TIMEZONE must be an IANA time zone name such as "
                          f"America/New_York or Europe/Paris, not {raw!r}") from None
    return name


def _demo(value: str, production: bool) -> bool:
    """``LMS_DEMO``: the built-in demo LMS (``lms_plugin.demo``, issue 12.3). It signs
    anyone who opens /demo in to its own demo organisation, so production refuses ``1``;
    ``production`` turns it on there deliberately (a sales or training instance)."""
    choice = (value or "").strip().lower()
    if choice in ("", "0", "false", "no", "off"):
        return False
    if choice == "production":
        return True
    if choice not in ("1", "true", "yes", "on"):
        raise ConfigError(f"LMS_DEMO must be 1 or 0, not {value!r}")
    if production:
        raise ConfigError("LMS_DEMO=1 is refused when LMS_ENV=production (the demo LMS signs "
                          "anyone in to its demo organisation); set LMS_DEMO=production to "
                          "serve it there deliberately")
    return True


#: The sender when MAIL_FROM is unset (development only: production with SMTP needs one).
DEFAULT_MAIL_FROM = "Clinical training <no-reply@lms-plugin.localhost>"


def _mail(env: Mapping[str, str], instance: Path, production: bool) -> dict[str, Any]:
    """The mail settings (:mod:`lms_plugin.mail`). The file backend is the default so that
    nothing leaves a developer's machine; SMTP needs a server, and in production an explicit
    sender, and a login only over STARTTLS (RFC 3207) so the password never crosses the
    network in clear."""
    from lms_plugin.mail import parse_address

    backend = env.get("MAIL_BACKEND", "").strip().lower() or "file"
    if backend not in ("file", "smtp"):
        raise ConfigError(f"MAIL_BACKEND must be file or smtp, not {backend!r}")
    use_tls = _flag("MAIL_USE_TLS", env, False)
    server = env.get("MAIL_SERVER", "").strip()
    if backend == "smtp" and not server:
        raise ConfigError("MAIL_SERVER is not set; it is required when MAIL_BACKEND=smtp")
    raw_port = env.get("MAIL_PORT", "").strip()
    if raw_port and (not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535):
        raise ConfigError(f"MAIL_PORT must be a port number from 1 to 65535, not {raw_port!r}")
    port = int(raw_port) if raw_port else (587 if use_tls else 25)
    username = env.get("MAIL_USERNAME", "").strip()
    password = env.get("MAIL_PASSWORD", "")
    if bool(username) != bool(password):
        raise ConfigError("MAIL_USERNAME and MAIL_PASSWORD go together: set both or neither")
    if production and backend == "smtp" and username and not use_tls:
        raise ConfigError("MAIL_USERNAME needs MAIL_USE_TLS=1 when LMS_ENV=production "
                          "(the SMTP password would cross the network in clear)")
    sender = env.get("MAIL_FROM", "").strip()
    if production and backend == "smtp" and not sender:
        raise ConfigError("MAIL_FROM is not set; it is required when LMS_ENV=production and "
                          "MAIL_BACKEND=smtp (e.g. Training <no-reply@hospital.org>)")
    try:
        parse_address(sender or DEFAULT_MAIL_FROM, "MAIL_FROM")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    folder = env.get("MAIL_FILE_DIR", "").strip()
    return {
        "MAIL_BACKEND": backend,
        "MAIL_FILE_DIR": str(Path(folder) if folder else instance / "mail"),
        "MAIL_SERVER": server,
        "MAIL_PORT": port,
        "MAIL_USE_TLS": use_tls,
        "MAIL_USERNAME": username,
        "MAIL_PASSWORD": password,
        "MAIL_FROM": sender or DEFAULT_MAIL_FROM,
        "MAIL_TIMEOUT": _seconds("MAIL_TIMEOUT", env, 30.0),
    }


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
    trusted_proxies = parse_networks("LMS_TRUSTED_PROXIES", env.get("LMS_TRUSTED_PROXIES", ""))
    if trusted_proxies and not proxy_fix:
        proxy_fix = 1
    if proxy_fix and not trusted_proxies:
        # Forwarded headers from anyone would let a client that bypasses the proxy choose
        # its own address (login throttling, logs): name the proxies, or trust none.
        raise ConfigError("LMS_PROXY_FIX needs LMS_TRUSTED_PROXIES (the proxies' addresses "
                          "or CIDRs, e.g. 10.0.0.0/8)")
    frame_ancestors = []
    for part in filter(None, (p.strip() for p in env.get("LMS_FRAME_ANCESTORS", "").split(","))):
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", part.rstrip("/")) or (
                production and not part.startswith("https://")):
            raise ConfigError(f"LMS_FRAME_ANCESTORS: {part!r} is not an origin like "
                              "https://hospital.instructure.com")
        frame_ancestors.append(part.rstrip("/").lower())
    session_idle = parse_duration("LMS_SESSION_IDLE", env.get("LMS_SESSION_IDLE", "30m"))
    session_max = parse_duration("LMS_SESSION_MAX", env.get("LMS_SESSION_MAX", "12h"))
    hash_profile = env.get("LMS_PASSWORD_HASH_PROFILE", "").strip().lower() or "standard"
    if hash_profile not in PASSWORD_HASH_PROFILES:
        raise ConfigError(f"LMS_PASSWORD_HASH_PROFILE must be standard or fast, "
                          f"not {hash_profile!r}")
    if production and hash_profile != "standard":
        raise ConfigError("LMS_PASSWORD_HASH_PROFILE=fast is for tests only; it is refused "
                          "when LMS_ENV=production")
    if session_idle > session_max:
        raise ConfigError("LMS_SESSION_IDLE must not be longer than LMS_SESSION_MAX")

    # Workers beat every few seconds (jobs.heartbeat); silence this long while jobs are due
    # is worth a warning on /admin/jobs and a line in /healthz.
    worker_stale = parse_duration("LMS_WORKER_STALE", env.get("LMS_WORKER_STALE", "3m"))
    if worker_stale < timedelta(seconds=30):
        raise ConfigError("LMS_WORKER_STALE must be at least 30s (workers beat every few "
                          f"seconds), not {env.get('LMS_WORKER_STALE')!r}")

    min_share = _share(env.get("LMS_ROSTER_MIN_SHARE", ""), "LMS_ROSTER_MIN_SHARE", 0.5)

    https = base_url.startswith("https://")
    return {
        "LMS_DEMO": _demo(env.get("LMS_DEMO", ""), production),
        "LMS_ENV": lms_env,
        "SECRET_KEY": _secret_key(instance, production, env),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL", "").strip() or None,
        "LMS_BASE_URL": base_url,
        "LMS_PROXY_FIX": proxy_fix,
        "LMS_TRUSTED_PROXIES": trusted_proxies,
        "LMS_FRAME_ANCESTORS": tuple(frame_ancestors),
        "LMS_DEFAULT_TIMEZONE": _timezone(env.get("LMS_DEFAULT_TIMEZONE", "America/New_York")),
        # Slow down, do not lock out: tiers per account+address pair (5 in a minute, then
        # 10 in 15 minutes, 20 an hour), a looser limit per address (hospitals NAT many staff).
        "LMS_LOGIN_RATE_LIMIT": _rate_limit("LMS_LOGIN_RATE_LIMIT", env.get(
            "LMS_LOGIN_RATE_LIMIT", "5/minute;10/15 minutes;20/hour")),
        "LMS_LOGIN_ADDRESS_LIMIT": _rate_limit("LMS_LOGIN_ADDRESS_LIMIT", env.get(
            "LMS_LOGIN_ADDRESS_LIMIT", "30/minute;300/hour")),
        # Server-side sessions (accounts.sessions): shared ward workstations need a short
        # idle timeout; the absolute lifetime also caps the signed cookie itself.
        "LMS_SESSION_IDLE": session_idle,
        "LMS_SESSION_MAX": session_max,
        "PERMANENT_SESSION_LIFETIME": session_max,
        "LMS_ROSTER_MIN_SHARE": min_share,
        "LMS_PASSWORD_HASH_PROFILE": hash_profile,
        "SESSION_STORE_PREFIX": env.get("SESSION_STORE_PREFIX", "").strip() or "lms:session:",
        **{name: job_seconds(name, env.get(name)) for name in JOB_SETTINGS},
        "LMS_JOB_QUEUE": env.get("LMS_JOB_QUEUE", "").strip() or DEFAULT_JOB_QUEUE,
        "LMS_WORKER_STALE": worker_stale,
        # The tool lives in LMS iframes: over HTTPS cookies must be SameSite=None; Secure.
        "SESSION_COOKIE_SECURE": https,
        "SESSION_COOKIE_SAMESITE": "None" if https else "Lax",
        "SESSION_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": https,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead; long lessons must not expire
        "WTF_CSRF_SSL_STRICT": False,  # Referer is stripped inside LMS iframes
        "MAX_CONTENT_LENGTH": 20 * 1024 * 1024,
        **_outbound(env, production),
        **_lti(env),
        **_mail(env, instance, production),
    }
