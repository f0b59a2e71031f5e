"""Job handlers of the LTI package, imported by the worker's handler discovery."""

from __future__ import annotations

from lms_plugin.lti import ags_jobs, nrps  # noqa: F401  (register "ags.score", "nrps.*")
