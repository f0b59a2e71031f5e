"""Background work through a transactional outbox.

A job row is written in the caller's transaction (so it exists iff the data that caused it
was committed); the worker claims due rows with row locking and runs registered handlers.
Other packages add job kinds with ``@job_handler("kind")`` in their ``tasks.py`` module.

Modules: ``models`` (the outbox and schedule tables); ``registry`` (job kinds, handlers,
the outcomes a handler raises); ``outbox`` (settings, ``enqueue``, ``newer_job_exists``);
``runner`` (the committing edge: claim, run, record, on one "due job" rule); ``queries``
(list, count, retry, prune: the admin page and CLI); ``schedule`` (periodic jobs);
``worker`` (in-process loop or RQ); ``services`` re-exports the public names for callers.
"""
