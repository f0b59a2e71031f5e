"""Imports every domain's models so the metadata (and Alembic autogenerate) sees all tables."""

from lms_plugin.accounts import models as accounts_models  # noqa: F401
from lms_plugin.catalog import models as catalog_models  # noqa: F401
