"""The handler registry: job kinds, their handlers, and the outcomes a handler reports.

Other packages add job kinds with ``@job_handler("kind")`` in their ``tasks.py`` module;
:func:`discover_handlers` imports those modules once, so nothing lists them here.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class RetryLater(Exception):  # noqa: N818  (an outcome, not an error)
    """Transient failure (network error, 5xx, 429): try again later.

    ``after_seconds`` is the far end's own wish (``Retry-After``); otherwise exponential
    backoff with full jitter decides.
    """

    def __init__(self, reason: str, after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_seconds = after_seconds


class PermanentFailure(Exception):  # noqa: N818
    """A definitive answer retrying cannot change (a 4xx): the job becomes ``rejected``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Superseded(Exception):  # noqa: N818
    """The far end already holds something newer: the job ends ``superseded``, not failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class JobContext:
    """What a handler may know about the job beyond its payload."""

    job_id: int
    kind: str
    organisation_id: int | None
    attempt: int  # 1 on the first try
    event_at: datetime
    now: datetime  # the worker's clock (injected in tests)
    worker_id: str

    @property
    def idempotency_key(self) -> str:
        """Same across retries of one job: send it so the far end can drop duplicates."""
        return f"outbox-{self.job_id}"


Handler = Callable[[dict[str, Any], JobContext], None]
_HANDLERS: dict[str, Handler] = {}
_discovered = False


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that performs jobs of ``kind``.

    It returns on success, raises :class:`RetryLater` for transient trouble and
    :class:`PermanentFailure` for a definitive refusal. Any other exception is treated as
    transient (a bug fixed by a deploy should not lose the job) and logged.
    """

    def decorator(func: Handler) -> Handler:
        existing = _HANDLERS.get(kind)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
                func.__module__, func.__qualname__):
            raise ValueError(f"job kind {kind!r} already has a handler: {existing.__qualname__}")
        _HANDLERS[kind] = func
        return func

    return decorator


#: kind -> function taking that kind's jobs (an organisation's, one page) and returning
#: {job id: one line saying what the job carries}, e.g. whose grade for which module.
Describer = Callable[[list[Any]], dict[int, str]]
_DESCRIBERS: dict[str, Describer] = {}


def job_describer(kind: str) -> Callable[[Describer], Describer]:
    """Register how /admin/jobs says what a job of ``kind`` carries (issue 12.10). The
    function receives every job of that kind on the page at once, so it reads what it needs
    in a fixed number of queries (no query per job)."""

    def decorator(func: Describer) -> Describer:
        _DESCRIBERS[kind] = func
        return func

    return decorator


def describe_jobs(jobs: list[Any]) -> dict[int, str]:
    """{job id: description} for the jobs whose kind has a describer (others: absent)."""
    discover_handlers()
    by_kind: dict[str, list[Any]] = {}
    for job in jobs:
        if job.kind in _DESCRIBERS:
            by_kind.setdefault(job.kind, []).append(job)
    described: dict[int, str] = {}
    for kind, group in by_kind.items():
        described.update(_DESCRIBERS[kind](group))
    return described


def registered_kinds() -> list[str]:
    """The job kinds that have a handler, sorted (after :func:`discover_handlers`: all)."""
    return sorted(_HANDLERS)


def discover_handlers() -> None:
    """Import every ``lms_plugin.<package>.tasks`` module so its handlers register.

    Handlers live beside the domain they serve (``lti/tasks.py`` for AGS scores…); the worker
    calls this once, so nothing has to list them here.
    """
    global _discovered
    if _discovered:
        return
    import lms_plugin

    for info in pkgutil.iter_modules(lms_plugin.__path__):
        if info.ispkg and importlib.util.find_spec(f"lms_plugin.{info.name}.tasks"):
            importlib.import_module(f"lms_plugin.{info.name}.tasks")
    _discovered = True

