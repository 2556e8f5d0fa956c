"""``cpool``: the entry point. Each command group lives in its own module and registers here;
the conventions they share (``--url``, ``--pool``, ``-o``) are in ``cli/conventions.py``."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from computepool.cli import (
    agent_cmd,
    catalog_cmd,
    demo_cmd,
    jobs_cmd,
    loadgen_cmd,
    pack_cmd,
    plan_cmd,
    ray_cmd,
    report_cmd,
    residency_cmd,
    serve_cmd,
    simulate_cmd,
    validate_cmd,
    wait_cmd,
    whatif_cmd,
)
from computepool.cli.common import warn
from computepool.cli.conventions import CpoolTyper

app = CpoolTyper(
    name="cpool",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def package_version() -> str:
    """The installed distribution's version; the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("computepool")
    except PackageNotFoundError:
        from computepool import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cpool {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """computepool: run a heterogeneous, multi-region accelerator pool as one computer.

    Conventions (docs/cli.md): client commands take --url ($CPOOL_URL) and --token
    ($CPOOL_TOKEN); commands that take a pool take --pool; listings take -o table|wide|json.
    """


simulate_cmd.register(app)
catalog_cmd.register(app)
validate_cmd.register(app)
plan_cmd.register(app)
residency_cmd.register(app)
pack_cmd.register(app)
serve_cmd.register(app)
jobs_cmd.register(app)
wait_cmd.register(app)
whatif_cmd.register(app)
ray_cmd.register(app)
agent_cmd.register(app)
demo_cmd.register(app)
report_cmd.register(app)
loadgen_cmd.register(app)


class _WarnOnStderr(logging.Handler):
    """Deprecations the library logs, shown as the CLI's warnings (stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


def main() -> None:
    dep = logging.getLogger("computepool.deprecation")
    dep.addHandler(_WarnOnStderr())
    dep.propagate = False
    app()


if __name__ == "__main__":
    main()
