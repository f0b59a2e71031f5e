"""The author page's text form of a CE activity: the ``credit:`` block as YAML.

Checked by ``catalog.credit_block.validate_credit`` (the same rules and ``file:line``
problems as ``credit:`` in ``module.yaml``).
"""

from __future__ import annotations

from typing import Any

from lms_plugin.catalog.content_format import Problem, parse_yaml
from lms_plugin.catalog.credit_block import validate_credit


def parse_credit_text(text: str, rel: str = "credit.yaml",
                      ) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Parse and check the YAML text of a ``credit:`` block.

    Returns ``(spec, [])`` when valid (``spec`` is what
    :func:`lms_plugin.credits.services.save_activity` takes) or ``(None, problems)``.
    """
    problems: list[Problem] = []
    data = parse_yaml(text, rel, problems)
    if problems:
        return None, problems
    return validate_credit(data, rel, problems, line=1)


def spec_to_yaml(activity: Any) -> str:
    """The YAML text of an existing activity (what the author page shows to edit)."""
    import yaml

    credits: dict[str, Any] = {}
    for offer in activity.offers:
        maximum = float(offer.max_credits)
        value: Any = int(maximum) if maximum.is_integer() else maximum
        credits[offer.credit_type] = ({"max": value, "designation": offer.designation}
                                      if offer.credit_type == "other" else value)
    data: dict[str, Any] = {
        "title": activity.title,
        "versions": list(activity.versions or []),
        "provider": {"name": activity.provider_name, "address": activity.provider_address},
        "accreditation": activity.accreditation_statement,
        "designation": activity.designation_statement,
        "objectives": list(activity.objectives),
        "faculty": list(activity.faculty),
        "format": activity.format,
        "release_date": activity.release_date,
        "last_review_date": activity.last_review_date,
        "termination_date": activity.termination_date,
        "credits": credits,
    }
    if activity.acpe_uan:
        data["acpe"] = {"uan": activity.acpe_uan}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=88)
