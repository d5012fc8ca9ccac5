"""Markdown reference of the CLI (``cli/REFERENCE.md``), rendered from the Typer app with Typer's own docs generator.

Regenerate after changing a command: ``python -m igpo_kit.cli.reference > cli/REFERENCE.md`` (a test checks that
the shipped file matches).
"""

from __future__ import annotations

import typer
import typer.main
from typer.cli import get_docs_for_click

TITLE = "igpo-kit CLI reference"


def render() -> str:
    """The Markdown reference of every ``igpo-kit`` command and option."""
    from igpo_kit.cli.main import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    ctx.ensure_object(dict)
    return get_docs_for_click(obj=command, ctx=ctx, name="igpo-kit", title=TITLE).strip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
