"""``cpool validate FILE...``: check any file the product reads, with file:line: field: reason."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from computepool.cli.common import console
from computepool.cli.file_kinds import KINDS, Outcome, check_file


def _kind_help() -> str:
    return "Force the kind instead of detecting it: " + "; ".join(
        f"{name}: {what}" for name, (_check, what) in KINDS.items()
    )


def report(outcome: Outcome) -> None:
    """``OK FILE (kind): summary``, or the problems one per line."""
    name = escape(outcome.file)
    if outcome.ok:
        console.print(
            f"[green]OK[/] {name} ({outcome.kind}): {escape(outcome.summary)}",
            highlight=False,
            soft_wrap=True,
        )
        return
    n = len(outcome.findings)
    console.print(
        f"[bold red]FAIL[/] {name} ({outcome.kind}): {n} problem{'s' if n != 1 else ''}",
        highlight=False,
        soft_wrap=True,
    )
    for f in outcome.findings:
        console.print(f"  {escape(str(f))}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(
        files: Annotated[
            list[Path],
            typer.Argument(
                help="Files to check: pool, workload or trace, job, service, plan, study, "
                "scenario, rulebook, approvals, openb pods or nodes (the kind is detected from "
                "the top-level keys or the CSV header)."
            ),
        ],
        kind: Annotated[
            str | None, typer.Option("--kind", help=_kind_help(), show_default=False)
        ] = None,
    ) -> None:
        """Check input files: OK and what each holds, or file:line: field: reason.

        Exit status 1 if any file is not valid."""
        if kind is not None and kind not in KINDS:
            console.print(f"[bold red]error:[/] --kind {escape(kind)!r}: one of {', '.join(KINDS)}")
            raise typer.Exit(2)
        bad = 0
        for f in files:
            outcome = check_file(f, kind)
            report(outcome)
            bad += not outcome.ok
        if bad:
            raise typer.Exit(1)
