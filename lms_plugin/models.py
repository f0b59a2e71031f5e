"""Imports every domain's models so the metadata (and Alembic autogenerate) sees all tables."""

from lms_plugin.accounts import models as accounts_models  # noqa: F401
from lms_plugin.catalog import models as catalog_models  # noqa: F401
from lms_plugin.credits import models as credits_models  # noqa: F401
from lms_plugin.demo import models as demo_models  # noqa: F401
from lms_plugin.jobs import models as jobs_models  # noqa: F401
from lms_plugin.learning import models as learning_models  # noqa: F401
from lms_plugin.lti import models as lti_models  # noqa: F401
from lms_plugin.quizzes import models as quizzes_models  # noqa: F401
from lms_plugin.reports import models as reports_models  # noqa: F401
