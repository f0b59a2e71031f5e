"""Background work through a transactional outbox: models, services, worker, admin page, CLI.

A job row is written in the caller's transaction (so it exists iff the data that caused it
was committed); the worker claims due rows with row locking and runs registered handlers.
Other packages add job kinds with ``@job_handler("kind")`` in their ``tasks.py`` module.
"""
