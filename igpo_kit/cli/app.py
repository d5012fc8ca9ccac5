"""The Typer app and what every sub-command module shares: consoles, common options, error mapping.

Command modules (:mod:`igpo_kit.cli.main`, :mod:`igpo_kit.cli.experiments`, :mod:`igpo_kit.cli.launch_cmds`)
import from here and register their commands on :data:`app`; :mod:`igpo_kit.cli.main` imports them all.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import io
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="igpo-kit",
    help="IGPO and GRPO for masked diffusion LLMs: recipes, components, runs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
)
out = Console()
err = Console(stderr=True)


class Executor(str, enum.Enum):
    """Where ``run``/``sweep`` execute: the choices of ``--executor`` (Typer lists them in usage errors)."""

    local = "local"
    subprocess = "subprocess"
    slurm = "slurm"


def _version(value: bool) -> None:
    if value:
        from igpo_kit import __version__

        out.print(f"igpo-kit {__version__}", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """IGPO and GRPO for masked diffusion LLMs: recipes, components, runs."""

BIND = typer.Option(None, "-b", "--bind", help="gin binding KEY=VALUE (repeatable)")
GIN_FILE = typer.Option(None, "-f", "--gin-file", help="extra gin file, parsed after the recipe (repeatable)")
PLUGIN = typer.Option(None, "--plugin", help="module or .py file registering components (repeatable)")


@contextlib.contextmanager
def stdout_to_stderr():
    """While a job runs, whatever libraries print to stdout (DeepSpeed's accelerator banner, ...) goes to stderr,
    at the file-descriptor level too, so stdout carries only the result (``--json`` stays parseable)."""
    sys.stdout.flush()
    try:
        fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fd = err_fd = None
    saved = os.dup(fd) if fd is not None else None
    if saved is not None:
        os.dup2(err_fd, fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _refuse_credentials(kwargs: dict) -> None:
    """A command-line argument that looks like a credential is refused before the command runs (never echoed).
    Bindings are checked by the config layer, which names the key."""
    from igpo_kit.errors import ConfigError
    from igpo_kit.secrets import ADVICE, describe

    for name, value in kwargs.items():
        if name == "bind":
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            what = describe(str(v)) if isinstance(v, (str, os.PathLike)) else None
            if what:
                raise ConfigError(f"--{name.replace('_', '-')}: looks like a credential ({what}); refused; {ADVICE}")


def handle_errors(fn):
    """Map ConfigError -> exit 2, other failures -> exit 1, one line each unless IGPO_KIT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from igpo_kit.errors import ConfigError

        try:
            _refuse_credentials(kwargs)
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except ConfigError as exc:
            if os.environ.get("IGPO_KIT_DEBUG") == "1":
                raise
            for line in exc.lines or [str(exc)]:
                err.print(f"[red]error:[/red] {escape(line)}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("IGPO_KIT_DEBUG") == "1":
                raise
            msg = str(exc).splitlines()[0] if str(exc) else ""
            err.print(f"[red]error:[/red] {type(exc).__name__}: {escape(msg)} (IGPO_KIT_DEBUG=1 shows the traceback)",
                      highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _plain(cell) -> str:
    from rich.text import Text

    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(str(cell)).plain if isinstance(cell, str) else str(cell)


def print_table(table, console: Console | None = None) -> None:
    """A rich table with whole names: on a terminal, a column whose cells are all <= 40 characters (names, numbers,
    states) is as wide as its longest cell and longer text folds onto the next line (never cut with '…'); when stdout is not a terminal, plain
    tab-separated lines (a ``# title`` line, the header, one line per row) that ``grep``/``cut`` read."""
    console = console or out
    columns = table.columns
    cells = [[_plain(c) for c in col.cells] for col in columns]
    if not console.is_terminal:
        lines = [f"# {_plain(table.title)}"] if table.title else []
        lines.append("\t".join(_plain(c.header) for c in columns))
        lines += ["\t".join(col[i].replace("\t", " ").replace("\n", " ") for col in cells)
                  for i in range(table.row_count)]
        console.file.write("\n".join(lines) + "\n")  # not console.print: rich expands tabs to spaces
        console.file.flush()
        return
    for col, values in zip(columns, cells):
        longest = max([len(_plain(col.header)), *(len(v) for v in values)], default=0)
        if longest <= 40:  # names, numbers, states: never narrower than their longest value
            col.min_width = max(col.min_width or 0, longest)
        col.overflow = "fold"  # prose columns wrap/fold
    console.print(table)
