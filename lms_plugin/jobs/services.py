"""The outbox's public surface, for callers that import ``lms_plugin.jobs.services``.

The rules live in three modules, re-exported here unchanged:

- :mod:`lms_plugin.jobs.registry`: job kinds, ``@job_handler`` and the outcomes a handler
  raises (:class:`RetryLater`, :class:`PermanentFailure`, :class:`Superseded`);
- :mod:`lms_plugin.jobs.outbox`: settings, :func:`enqueue` in the caller's transaction and
  :func:`newer_job_exists`;
- :mod:`lms_plugin.jobs.runner`: the committing edge (claim, run, record the outcome) on
  one "due job" rule;
- :mod:`lms_plugin.jobs.queries`: list, count, retry and prune (the admin page and CLI).

Module constants (``COUNT_CAP``, ``PRUNE_BATCH``…) are read where they are defined: patch
them on :mod:`lms_plugin.jobs.queries`.
"""

from __future__ import annotations

from lms_plugin.jobs.outbox import (
    enqueue,
    is_postgres,
    newer_job_exists,
    newer_job_id,
    setting,
)
from lms_plugin.jobs.queries import (
    ALL_ORGANISATIONS,
    COUNT_CAP,
    PRUNABLE,
    PRUNE_BATCH,
    PRUNE_KIND,
    RETRY_ALL_KIND,
    RETRY_BATCH,
    RETRY_BATCHES_PER_RUN,
    RETRY_PER_SECOND,
    RetryProgress,
    continue_retry_all,
    count_by_status,
    get_job,
    list_jobs,
    pace_group,
    prune_batch,
    request_retry_all_failed,
    requeue_failed_batch,
    retry_all_failed,
    retry_all_progress,
    retry_job,
    run_in_batches,
)
from lms_plugin.jobs.registry import (
    Handler,
    JobContext,
    PermanentFailure,
    RetryLater,
    Superseded,
    describe_jobs,
    discover_handlers,
    job_describer,
    job_handler,
    registered_kinds,
)
from lms_plugin.jobs.runner import (
    RunReport,
    backoff_delay,
    due_job_ids,
    due_rule,
    lease_cutoff,
    run_due_jobs,
    run_job,
)

__all__ = [
    "ALL_ORGANISATIONS", "COUNT_CAP", "PRUNABLE", "PRUNE_BATCH", "PRUNE_KIND",
    "RETRY_ALL_KIND", "RETRY_BATCH", "RETRY_BATCHES_PER_RUN", "RETRY_PER_SECOND", "Handler",
    "JobContext", "PermanentFailure", "RetryLater", "RetryProgress", "RunReport",
    "Superseded", "backoff_delay", "continue_retry_all", "count_by_status",
    "describe_jobs", "discover_handlers", "due_job_ids", "due_rule", "enqueue", "get_job",
    "is_postgres", "job_describer", "job_handler", "lease_cutoff", "list_jobs",
    "newer_job_exists", "newer_job_id", "pace_group", "prune_batch", "registered_kinds",
    "request_retry_all_failed",
    "requeue_failed_batch", "retry_all_failed", "retry_all_progress", "retry_job",
    "run_due_jobs", "run_in_batches", "run_job", "setting",
]
