"""The Rich console the CLI prints tables on: the terminal's width, or, into a pipe or a
file (where Rich would assume 80 columns and cut every cell), wide enough not to fold."""

from __future__ import annotations

from rich.console import Console


def console() -> Console:
    out = Console(soft_wrap=False)
    return out if out.is_terminal else Console(soft_wrap=False, width=160)
