"""``cpool serve`` (the live control plane) and ``cpool admin`` (tenants and tokens, on the store)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computepool.cli.common import console, fail, load_or_exit

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where the store, job logs and checkpoints live ($CPOOL_HOME, ./.cpool)."
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Store URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB.",
        envvar="CPOOL_DB",
    ),
]


def _data_dir(d: Path | None) -> Path:
    from computepool.server.runtime import default_data_dir

    return d or default_data_dir()


def parse_quota(text: str) -> tuple[str, dict]:
    """``FLAVOR=NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]]``; an empty limit means none."""
    key, sep, rest = text.partition("=")
    parts = rest.split(":")
    try:
        if not sep or not key or not 1 <= len(parts) <= 3:
            raise ValueError
        nums = [float(p) if p != "" else None for p in parts]
        if nums[0] is None:
            raise ValueError
    except ValueError:
        raise fail(
            f"--quota {text!r}: expected FLAVOR=NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]], "
            "e.g. us-central/V100=8:4 or '*=16'"
        ) from None
    names = ("nominal", "borrowing_limit", "lending_limit")
    return key, {n: v for n, v in zip(names, nums, strict=False)}


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config: Annotated[
            str | None,
            typer.Option(
                "--config", help="Pool YAML or shipped pool name (default: the demo pool)."
            ),
        ] = None,
        db: DbOpt = None,
        backend: Annotated[
            str,
            typer.Option(
                "--backend",
                help="Where jobs run: local (processes on this machine), ray://HOST:PORT, or "
                "ray (the cluster at $RAY_ADDRESS); on Ray the pool is read from the cluster.",
            ),
        ] = "local",
        checkpoint_dir: Annotated[
            Path | None,
            typer.Option(
                "--checkpoint-dir",
                help="Ray backend: where workers keep checkpoints, a path every Ray node can "
                "write (default: DATA_DIR/checkpoints).",
            ),
        ] = None,
        host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port")] = 8000,
        data_dir: DataDirOpt = None,
        policy: Annotated[str, typer.Option("--policy", help="Scheduling policy.")] = "fifo-sticky",
        check: Annotated[
            list[str] | None,
            typer.Option(
                "--check",
                help="Admission check (repeatable): residency (default; a no-op on a pool in "
                "one jurisdiction), or off.",
            ),
        ] = None,
        placement: Annotated[
            str,
            typer.Option(
                "--placement",
                help="Placement profile (bestfit, fgd, ...; see `cpool pack`) or slots.",
            ),
        ] = "bestfit",
        throughputs: Annotated[
            str,
            typer.Option(
                "--throughputs",
                help="Throughput table: shipped name (gavel) or a JSON file in Gavel's layout.",
            ),
        ] = "gavel",
        round_seconds: Annotated[float, typer.Option("--round-seconds")] = 1.0,
        grace_seconds: Annotated[
            float, typer.Option("--grace-seconds", help="SIGTERM to SIGKILL on preemption.")
        ] = 10.0,
        stop_jobs_on_exit: Annotated[
            bool,
            typer.Option(
                "--stop-jobs-on-exit/--keep-jobs-on-exit",
                help="On shutdown, stop running jobs (they are requeued) or leave them to be adopted.",
            ),
        ] = False,
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
        services: Annotated[
            str | None,
            typer.Option(
                "--services",
                help="Workload YAML whose services: run beside the jobs as EMULATED replica "
                "processes, each at /services/NAME/v1/completions (docs/serving.md).",
            ),
        ] = None,
        public_metrics: Annotated[
            bool,
            typer.Option(
                "--public-metrics",
                help="Show per-tenant series of /metrics (tenant names, queue lengths) without "
                "a token; by default only an admin token sees them all, a tenant's its own.",
            ),
        ] = False,
    ) -> None:
        """Start the live pool: REST API + scheduler loop; jobs run as real processes."""
        import uvicorn

        from computepool.server.checks import DEFAULT_CHECKS
        from computepool.server.logs import configure
        from computepool.server.runtime import ServeSettings, build_app

        if round_seconds <= 0 or grace_seconds < 0:
            raise fail("--round-seconds must be > 0 and --grace-seconds >= 0")
        settings = ServeSettings(
            data_dir=_data_dir(data_dir),
            db_url=db,
            pool=config,
            backend=backend,
            policy=policy,
            checks=tuple(check) if check else DEFAULT_CHECKS,
            round_seconds=round_seconds,
            grace_seconds=grace_seconds,
            stop_jobs_on_exit=stop_jobs_on_exit,
            placement=placement,
            checkpoint_dir=checkpoint_dir,
            throughputs=throughputs,
            services=services,
            public_metrics=public_metrics,
        )
        configure(log_level)
        # The scheduler round runs in a thread beside the event loop: switch the GIL more
        # often than the default 5 ms so requests are not held up behind a long round.
        sys.setswitchinterval(0.001)
        # Fewer, larger young collections: request handling allocates many short-lived
        # objects, and each collection is a pause every request in flight waits for.
        gc.set_threshold(50_000, 20, 20)
        api = load_or_exit(lambda: build_app(settings))
        # What start-up loaded (catalog, throughput tables, ORM metadata) lives as long as
        # the server: keep it out of the collector's scans, whose pauses were the p99.
        gc.collect()
        gc.freeze()
        uvicorn.run(
            api, host=host, port=port, log_config=None, access_log=False, log_level=log_level
        )

    admin = typer.Typer(
        help="Manage tenants and API tokens directly in the store.", no_args_is_help=True
    )
    app.add_typer(admin, name="admin")
    tenant = typer.Typer(help="Tenants: weight, cohort, quotas, budget.", no_args_is_help=True)
    admin.add_typer(tenant, name="tenant")
    token = typer.Typer(help="Bearer tokens (shown once, stored hashed).", no_args_is_help=True)
    admin.add_typer(token, name="token")

    def _sessions(data_dir: Path | None, db: str | None):
        from computepool.server.db import sessions
        from computepool.server.runtime import open_store

        d = _data_dir(data_dir)
        d.mkdir(parents=True, exist_ok=True)
        return sessions(load_or_exit(lambda: open_store(d, db)))

    @admin.command("init")
    def init(data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
        """Create the store (if new) and print a new admin token."""
        from computepool.server import store

        S = _sessions(data_dir, db)
        with S() as s:
            row, tok = store.create_token(s, "admin", None, "cli", name="admin")
            s.commit()
        console.print(f"admin token (id {row.id}; shown once):")
        print(tok)

    @tenant.command("add")
    def tenant_add(
        name: str,
        weight: Annotated[float, typer.Option("--weight", help="Fair-share weight.")] = 1.0,
        cohort: Annotated[
            str, typer.Option("--cohort", help="Tenants of a cohort lend and borrow.")
        ] = "",
        quota: Annotated[
            list[str] | None,
            typer.Option(
                "--quota", help="FLAVOR=NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]] (repeatable)."
            ),
        ] = None,
        budget_hours: Annotated[float | None, typer.Option("--budget-hours")] = None,
        budget_usd: Annotated[float | None, typer.Option("--budget-usd")] = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Create or update a tenant."""
        from pydantic import ValidationError

        from computepool.server import store
        from computepool.server.schemas import TenantIn

        quotas = dict(parse_quota(q) for q in quota or ())
        try:
            body = TenantIn(
                name=name,
                weight=weight,
                cohort=cohort,
                quotas=quotas,
                budget_accel_hours=budget_hours,
                budget_usd=budget_usd,
            )
        except ValidationError as exc:
            e = exc.errors()[0]
            raise fail(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}") from None
        S = _sessions(data_dir, db)
        with S() as s:
            _, created = store.upsert_tenant(s, body, "cli")
            s.commit()
        console.print(f"{'created' if created else 'updated'} tenant {name!r}")

    @tenant.command("list")
    def tenant_list(data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
        from computepool.server import store

        t = Table(title="Tenants")
        for col in ("name", "weight", "cohort", "quotas", "budget h", "budget USD"):
            t.add_column(col)
        with _sessions(data_dir, db)() as s:
            for r in store.tenants(s):
                q = ", ".join(
                    f"{k}={v['nominal']:g}"
                    + ("" if v.get("borrowing_limit") is None else f"+{v['borrowing_limit']:g}")
                    for k, v in (r.quotas or {}).items()
                )
                t.add_row(
                    r.name,
                    f"{r.weight:g}",
                    r.cohort or "-",
                    q or "unlimited",
                    "-" if r.budget_accel_hours is None else f"{r.budget_accel_hours:g}",
                    "-" if r.budget_usd is None else f"{r.budget_usd:g}",
                )
        console.print(t)

    @token.command("create")
    def token_create(
        tenant_name: Annotated[
            str | None, typer.Argument(metavar="TENANT", help="Tenant the token acts for.")
        ] = None,
        admin_role: Annotated[
            bool, typer.Option("--admin", help="An admin token instead.")
        ] = False,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Print a new bearer token for a tenant (or --admin)."""
        from computepool.server import store

        if admin_role == (tenant_name is not None):
            raise fail("give a TENANT, or --admin for an admin token")
        with _sessions(data_dir, db)() as s:
            t = None
            if tenant_name is not None:
                t = store.tenant_by_name(s, tenant_name)
                if t is None:
                    raise fail(f"no tenant {tenant_name!r} (add it with `cpool admin tenant add`)")
            row, tok = store.create_token(s, "admin" if admin_role else "tenant", t, "cli")
            s.commit()
        print(tok)

    @token.command("revoke")
    def token_revoke(token_id: int, data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
        """Revoke a token by id."""
        from computepool.server import store

        with _sessions(data_dir, db)() as s:
            if not store.revoke_token(s, token_id, "cli"):
                raise fail(f"no active token {token_id}")
            s.commit()
        console.print(f"revoked token {token_id}")
