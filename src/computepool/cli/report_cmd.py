"""``cpool report FILE.json``: render a saved simulation or plan result as self-contained HTML
in the live dashboard's visual language: the same page ``cpool simulate/compare --report``
writes. It never silently replaces a file another command wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from computepool.cli.common import console, fail, load_or_exit


def _generator(result: Path) -> str:
    return f"cpool report {result.name}"


def refuse_overwrite(target: Path, result: Path, explicit: bool, force: bool) -> str | None:
    """Why writing ``target`` needs ``--force`` or ``--out``, or None when it may be written:
    it does not exist, it was named with ``--out``, or ``cpool report`` wrote it from a file of
    the same name (re-rendering after a new run)."""
    if explicit or force or not target.exists():
        return None
    from computepool.report.html import generator_of

    try:
        head = target.read_text(errors="replace")
    except OSError:
        head = ""
    by = generator_of(head)
    if by == _generator(result):
        return None
    who = f"written by `{by}`" if by else "not written by `cpool report`"
    return (
        f"{target} exists ({who}); not replacing it. Give --out FILE to write elsewhere, "
        "or --force to replace it."
    )


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
            typer.Option(
                "--out",
                help="HTML file to write (replaced if it exists). Default: RESULT with .html, "
                "which is not replaced if another command wrote it (see --force).",
                show_default=False,
            ),
        ] = None,
        out_short: Annotated[
            Path | None, typer.Option("-o", hidden=True, help="Old spelling of --out.")
        ] = None,
        force: Annotated[
            bool,
            typer.Option(
                "--force/--no-force",
                help="Replace the default output file even if another command wrote it "
                "(e.g. `cpool simulate --report`).",
            ),
        ] = False,
        title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
    ) -> None:
        """Render a simulation or plan result as one self-contained HTML page (no CDN)."""
        from computepool.cli.conventions import alias
        from computepool.report.saved import render

        out = alias(out, out_short, "--out", "-o")
        doc = load_or_exit(lambda: render(result, title, _generator(result)))
        target = out or result.with_suffix(".html")
        why = refuse_overwrite(target, result, out is not None, force)
        if why is not None:
            raise fail(why)
        load_or_exit(lambda: target.write_text(doc))
        console.print(f"wrote {target}")
