"""``cpool report FILE.json``: render a saved simulation or plan result as self-contained HTML
in the live dashboard's visual language."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from computepool.cli.common import console, load_or_exit


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        result: Annotated[
            Path,
            typer.Argument(
                help="A result saved by `cpool simulate --json`, `cpool compare --json` or "
                "`cpool plan --json`."
            ),
        ],
        out: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="HTML file to write (default: RESULT with .html)."),
        ] = None,
        title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
    ) -> None:
        """Render a simulation or plan result as one self-contained HTML page (no CDN)."""
        from computepool.report.saved import render

        doc = load_or_exit(lambda: render(result, title))
        target = out or result.with_suffix(".html")
        load_or_exit(lambda: target.write_text(doc))
        console.print(f"wrote {target}")
