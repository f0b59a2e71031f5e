"""Click parameter types shared by the domains' command groups."""

from __future__ import annotations

from typing import Any

import click


class PathArg(click.Path):
    """``click.Path`` that refuses an empty value.

    An empty argument (``lms-plugin content import ""``, a shell variable that was never set)
    would otherwise mean the current folder to ``Path("")``, or "standard output" to an
    ``-o ""`` option: a usage error naming the parameter instead.
    """

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path is not allowed (give a file or folder name)", param, ctx)
        return super().convert(value, param, ctx)
