"""The conventions every ``cpool`` command follows (docs/cli.md).

- A command that talks to a server takes ``--url`` (``$CPOOL_URL``, default
  http://127.0.0.1:8000) and ``--token`` (``$CPOOL_TOKEN``).
- A command that takes a pool takes ``--pool`` (a shipped pool name or a pool YAML).
- Listing commands take ``-o table|wide|json`` (see ``cli/output.py``).
- Boolean flags read ``--x/--no-x`` in help, never with a type.
- Old spellings of these options still work as hidden aliases (``alias``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from computepool.cli.common import fail

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="CPOOL_URL", help="Server URL (cpool serve).", show_envvar=True),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CPOOL_TOKEN",
        help="Bearer token (`cpool admin token create`).",
        show_envvar=True,
    ),
]
#: ``--server`` was the name of ``--url`` on ``audit``, ``route`` and ``approvals``.
ServerAliasOpt = Annotated[
    str | None, typer.Option("--server", hidden=True, help="Old name of --url.")
]


def alias(new: Any, old: Any, new_name: str, old_name: str, default: Any = None) -> Any:
    """The value of an option that also has an old, hidden spelling: the old one when only it
    was given; an error when both were given with different values."""
    if old is None:
        return new
    if new is not None and new != default and new != old:
        raise fail(f"{old_name} is the old name of {new_name}: give one of them")
    return old


def _flags_without_type(command: Any, ctx: Any) -> None:
    """Help shows a flag as ``--x/--no-x`` alone: no ``<bool>`` type column."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class CpoolCommand(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _flags_without_type(self, ctx)
        super().format_help(ctx, formatter)


class CpoolGroup(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _flags_without_type(self, ctx)
        super().format_help(ctx, formatter)


class CpoolTyper(typer.Typer):
    """``typer.Typer`` whose groups and commands render help by the conventions above."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("cls", CpoolGroup)
        kw.setdefault("no_args_is_help", True)
        super().__init__(**kw)

    def command(self, *args: Any, **kw: Any) -> Any:
        kw.setdefault("cls", CpoolCommand)
        return super().command(*args, **kw)
