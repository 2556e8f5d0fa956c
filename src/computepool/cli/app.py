"""``cpool``: the entry point. Each command group lives in its own module and registers here."""

from __future__ import annotations

import typer

from computepool.cli import (
    catalog_cmd,
    jobs_cmd,
    pack_cmd,
    plan_cmd,
    ray_cmd,
    report_cmd,
    residency_cmd,
    serve_cmd,
    simulate_cmd,
    validate_cmd,
    wait_cmd,
)

app = typer.Typer(
    name="cpool",
    help="computepool: run a heterogeneous, multi-region accelerator pool as one computer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
simulate_cmd.register(app)
catalog_cmd.register(app)
validate_cmd.register(app)
plan_cmd.register(app)
residency_cmd.register(app)
pack_cmd.register(app)
serve_cmd.register(app)
jobs_cmd.register(app)
wait_cmd.register(app)
ray_cmd.register(app)
report_cmd.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
