"""``cpool serve`` (the live control plane) and ``cpool admin`` (tenants and tokens, on the store)."""

from __future__ import annotations

import contextlib
import gc
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from computepool.cli.common import console, fail, load_or_exit
from computepool.cli.conventions import CpoolTyper, alias
from computepool.cli.output import Col, Output, OutputOpt, emit

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
    """``--data-dir``, else ``$CPOOL_HOME``, else ``./.cpool``, made absolute: workers run in
    directories under it, so a relative path would name another place for each of them."""
    from computepool.server.runtime import default_data_dir

    return (d or default_data_dir()).resolve()


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


def _quotas(quotas: dict) -> str:
    return ", ".join(
        f"{k}={v['nominal']:g}"
        + ("" if v.get("borrowing_limit") is None else f"+{v['borrowing_limit']:g}")
        for k, v in quotas.items()
    )


def _opt(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


TENANT_COLUMNS = [
    Col("NAME", lambda r: escape(r["name"]), key=True),
    Col("WEIGHT", lambda r: f"{r['weight']:g}", key=True, right=True),
    Col("COHORT", lambda r: escape(r["cohort"] or "-"), key=True),
    Col("BUDGET H", lambda r: _opt(r["budget_accel_hours"]), key=True, right=True),
    Col("BUDGET USD", lambda r: _opt(r["budget_usd"]), key=True, right=True),
    Col("MAX H/JOB", lambda r: _opt(r["default_max_hours"]), key=True, right=True, wide=True),
    Col("REQ/S", lambda r: _opt(r.get("requests_per_s")), right=True, wide=True),
    Col("TOK/MIN", lambda r: _opt(r.get("tokens_per_min")), right=True, wide=True),
    Col("HANDLERS", lambda r: escape(", ".join(r["handlers"])), wide=True, wrap=True),
    Col("QUOTAS", lambda r: escape(_quotas(r["quotas"]) or "unlimited"), wrap=True),
]


def _dataset(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path.startswith("/") or not Path(path).is_dir():
        raise fail(f"--sandbox-dataset {text!r}: expected NAME=DIR with DIR an existing directory")
    return name, path


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        pool: Annotated[
            str | None,
            typer.Option(
                "--pool", help="Shipped pool name or a pool YAML (default: the demo pool)."
            ),
        ] = None,
        config: Annotated[
            str | None, typer.Option("--config", hidden=True, help="Old name of --pool.")
        ] = None,
        db: DbOpt = None,
        backend: Annotated[
            str,
            typer.Option(
                "--backend",
                help="Where jobs run: local (processes on this machine), ray://HOST:PORT, "
                "ray (the cluster at $RAY_ADDRESS; the pool is read from it), or federated "
                "(clusters whose `cpool agent`s register; docs/federation.md).",
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
        host: Annotated[
            str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")
        ] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
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
        round_seconds: Annotated[
            float, typer.Option("--round-seconds", help="Seconds between scheduling rounds.")
        ] = 1.0,
        grace_seconds: Annotated[
            float, typer.Option("--grace-seconds", help="SIGTERM to SIGKILL on preemption.")
        ] = 10.0,
        lease_seconds: Annotated[
            float,
            typer.Option(
                "--lease-seconds",
                help="One server writes to a store: it holds a lease it renews; another server "
                "may take the store over this long after the holder stopped renewing.",
            ),
        ] = 15.0,
        standby: Annotated[
            bool,
            typer.Option(
                "--standby/--no-standby",
                help="Several servers on one PostgreSQL store: serve the API while another "
                "leads, take over (and adopt its running jobs) when its lease comes free "
                "(docs/ha.md).",
            ),
        ] = False,
        stop_jobs_on_exit: Annotated[
            bool,
            typer.Option(
                "--stop-jobs-on-exit/--keep-jobs-on-exit",
                help="On shutdown, stop running jobs (they are requeued) or leave them to be adopted.",
            ),
        ] = False,
        log_level: Annotated[
            str, typer.Option("--log-level", help="debug, info, warning or error.")
        ] = "info",
        services: Annotated[
            str | None,
            typer.Option(
                "--services",
                help="Workload YAML whose services: run beside the jobs as replicas of their "
                "engines (EMULATED by default), reached through the gateway (/v1/completions); with "
                "--backend ray each replica runs on the Ray node of its devices "
                "(docs/serving.md).",
            ),
        ] = None,
        sandbox: Annotated[
            str,
            typer.Option(
                "--sandbox",
                help="Worker sandbox (local backend; docs/security.md): auto (when the machine "
                "can: root, bubblewrap), on (refuse to start without), off.",
            ),
        ] = "auto",
        allow_unsandboxed: Annotated[
            bool,
            typer.Option(
                "--allow-unsandboxed/--no-allow-unsandboxed",
                help="Run several tenants' jobs even when workers cannot be sandboxed (they "
                "can then read and change each other's files and the store).",
            ),
        ] = False,
        sandbox_uid_base: Annotated[
            int,
            typer.Option(
                "--sandbox-uid-base",
                help="Tenant T's workers run as uid = gid = BASE + T (no passwd entry needed).",
            ),
        ] = 200_000,
        sandbox_network: Annotated[
            bool,
            typer.Option(
                "--sandbox-network/--no-sandbox-network",
                help="Share the host network with sandboxed workers (default: loopback only).",
            ),
        ] = False,
        sandbox_ro: Annotated[
            list[str] | None,
            typer.Option("--sandbox-ro", help="Extra read-only directory in every sandbox."),
        ] = None,
        sandbox_dataset: Annotated[
            list[str] | None,
            typer.Option(
                "--sandbox-dataset",
                help="NAME=DIR: a job that lists dataset NAME sees DIR read-only at "
                "/cpool/datasets/NAME.",
            ),
        ] = None,
        public_metrics: Annotated[
            bool,
            typer.Option(
                "--public-metrics/--no-public-metrics",
                help="Show per-tenant series of /metrics (tenant names, queue lengths) without "
                "a token; by default only an admin token sees them all, a tenant's its own.",
            ),
        ] = False,
        agent_lease_seconds: Annotated[
            float,
            typer.Option(
                "--agent-lease-seconds",
                help="Federated backend: an agent that has not renewed its lease for this "
                "long is lost (its jobs requeued); it stops its workers before.",
            ),
        ] = 15.0,
        gateway_rps: Annotated[
            float | None,
            typer.Option(
                "--gateway-requests-per-s",
                help="Gateway rate limit of a tenant that sets none: requests a second "
                "(default: unlimited).",
            ),
        ] = None,
        gateway_tpm: Annotated[
            float | None,
            typer.Option(
                "--gateway-tokens-per-min",
                help="Gateway rate limit of a tenant that sets none: prompt + completion "
                "tokens a minute (default: unlimited).",
            ),
        ] = None,
        token_prices: Annotated[
            str | None,
            typer.Option(
                "--token-prices",
                help="Gateway prices per million tokens (YAML; default: the shipped "
                "catalog/data/serving/token_prices.yaml).",
            ),
        ] = None,
    ) -> None:
        """Start the live pool: REST API + scheduler loop; jobs run as real processes."""
        import uvicorn

        from computepool.server.checks import DEFAULT_CHECKS
        from computepool.server.ha import foreign_holder, standby_refusal
        from computepool.server.lease import LeaseHeld
        from computepool.server.logs import configure
        from computepool.server.runtime import ServeSettings, build_app, db_url, is_ray

        if not 1.0 <= lease_seconds <= 3600.0:
            raise fail("--lease-seconds must be between 1 and 3600")
        if not 1.0 <= agent_lease_seconds <= 3600.0:
            raise fail("--agent-lease-seconds must be between 1 and 3600")
        if round_seconds <= 0 or grace_seconds < 0:
            raise fail("--round-seconds must be > 0 and --grace-seconds >= 0")
        if sandbox_uid_base < 1000:
            raise fail("--sandbox-uid-base must be at least 1000 (not a system user's uid)")
        settings = ServeSettings(
            data_dir=_data_dir(data_dir),
            db_url=db,
            pool=alias(pool, config, "--pool", "--config"),
            backend=backend,
            policy=policy,
            checks=tuple(check) if check else DEFAULT_CHECKS,
            round_seconds=round_seconds,
            grace_seconds=grace_seconds,
            lease_seconds=lease_seconds,
            standby=standby,
            stop_jobs_on_exit=stop_jobs_on_exit,
            placement=placement,
            checkpoint_dir=checkpoint_dir,
            throughputs=throughputs,
            services=services,
            sandbox=sandbox,
            allow_unsandboxed=allow_unsandboxed,
            sandbox_uid_base=sandbox_uid_base,
            sandbox_network=sandbox_network,
            sandbox_read_only=tuple(sandbox_ro or ()),
            sandbox_datasets=tuple(_dataset(d) for d in sandbox_dataset or ()),
            public_metrics=public_metrics,
            agent_lease_seconds=agent_lease_seconds,
            gateway_requests_per_s=gateway_rps,
            gateway_tokens_per_min=gateway_tpm,
            token_prices=token_prices,
        )
        configure(log_level)
        # The scheduler round runs in a thread beside the event loop: switch the GIL more
        # often than the default 5 ms so requests are not held up behind a long round.
        sys.setswitchinterval(0.001)
        # Fewer, larger young collections: request handling allocates many short-lived
        # objects, and each collection is a pause every request in flight waits for.
        gc.set_threshold(50_000, 20, 20)
        why_not = standby_refusal(db_url(settings.data_dir, db)) if standby else None
        if why_not:
            raise fail(why_not, code=1)
        api = load_or_exit(lambda: build_app(settings))
        service = api.state.ctx.service
        if not standby:  # one writer per store: refuse while another serves it
            try:
                service.lease.acquire()
            except LeaseHeld as exc:
                alone = standby_refusal(db_url(settings.data_dir, db)) is not None
                how = (
                    "an SQLite store is served by one server alone"
                    if alone
                    else "or run every server with --standby: one leads, the others stand by"
                )
                raise fail(f"{exc} ({how})", code=1) from None
        elif not is_ray(backend) and (why_not := foreign_holder(service.lease.current())):
            raise fail(why_not, code=1)
        # What start-up loaded (catalog, throughput tables, ORM metadata) lives as long as
        # the server: keep it out of the collector's scans, whose pauses were the p99.
        gc.collect()
        gc.freeze()
        server = uvicorn.Server(
            uvicorn.Config(
                api, host=host, port=port, log_config=None, access_log=False, log_level=log_level
            )
        )
        service.on_fenced = lambda: setattr(server, "should_exit", True)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if service.fenced is not None:
            raise fail(str(service.fenced), code=1)
        if not server.started:  # as uvicorn.run: the port was taken, or start-up failed
            raise typer.Exit(3)

    admin = CpoolTyper(help="Manage tenants and API tokens directly in the store.")
    app.add_typer(admin, name="admin")
    tenant = CpoolTyper(help="Tenants: weight, cohort, quotas, budget.")
    admin.add_typer(tenant, name="tenant")
    token = CpoolTyper(help="Bearer tokens (shown once, stored hashed).")
    admin.add_typer(token, name="token")

    def _sessions(data_dir: Path | None, db: str | None):
        from computepool.server.db import sessions
        from computepool.server.runtime import open_store, private_data_dir

        d = private_data_dir(_data_dir(data_dir))
        return sessions(load_or_exit(lambda: open_store(d, db)))

    from computepool.cli import agent_cmd

    agent_cmd.register_admin(admin, _sessions)

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
        name: Annotated[str, typer.Argument(help="Tenant name (an automaker or team).")],
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
        budget_hours: Annotated[
            float | None,
            typer.Option("--budget-hours", help="Budget in accelerator-hours (default: none)."),
        ] = None,
        budget_usd: Annotated[
            float | None, typer.Option("--budget-usd", help="Budget in USD (default: none).")
        ] = None,
        default_max_hours: Annotated[
            float | None,
            typer.Option(
                "--default-max-hours",
                help="Time limit of its jobs that give no max_hours (a budget needs limits).",
            ),
        ] = None,
        requests_per_s: Annotated[
            float | None,
            typer.Option(
                "--requests-per-s",
                help="Gateway rate limit: requests a second (default: the server's).",
            ),
        ] = None,
        tokens_per_min: Annotated[
            float | None,
            typer.Option(
                "--tokens-per-min",
                help="Gateway rate limit: prompt + completion tokens a minute (default: the "
                "server's).",
            ),
        ] = None,
        handler: Annotated[
            list[str] | None,
            typer.Option(
                "--handler",
                help="A data handler it owns besides its name (repeatable; replaces those on "
                "record; none given: keep them).",
            ),
        ] = None,
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
                default_max_hours=default_max_hours,
                requests_per_s=requests_per_s,
                tokens_per_min=tokens_per_min,
                handlers=handler,
            )
        except ValidationError as exc:
            e = exc.errors()[0]
            raise fail(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}") from None
        S = _sessions(data_dir, db)
        with S() as s:
            try:
                _, created = store.upsert_tenant(s, body, "cli")
            except store.Conflict as exc:
                raise fail(f"{exc.field}: {exc.reason}") from None
            s.commit()
        console.print(f"{'created' if created else 'updated'} tenant {name!r}")

    @tenant.command("list")
    def tenant_list(
        output: OutputOpt = Output.table, data_dir: DataDirOpt = None, db: DbOpt = None
    ) -> None:
        """Tenants with their weight, cohort, quotas and budget."""
        from computepool.server import store

        with _sessions(data_dir, db)() as s:
            rows = [
                {"name": r.name, "weight": r.weight, "cohort": r.cohort, "quotas": r.quotas or {},
                 "budget_accel_hours": r.budget_accel_hours, "budget_usd": r.budget_usd,
                 "default_max_hours": r.default_max_hours,
                 "requests_per_s": r.requests_per_s, "tokens_per_min": r.tokens_per_min,
                 "handlers": [r.name, *store.handlers_of(s, r.id)]}
                for r in store.tenants(s)
            ]  # fmt: skip
        emit(output, TENANT_COLUMNS, rows, "Tenants")

    @token.command("create")
    def token_create(
        tenant_name: Annotated[
            str | None, typer.Argument(metavar="TENANT", help="Tenant the token acts for.")
        ] = None,
        admin_role: Annotated[
            bool, typer.Option("--admin/--no-admin", help="An admin token instead.")
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
    def token_revoke(
        token_id: Annotated[int, typer.Argument(help="Token id (printed when it was made).")],
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Revoke a token by id."""
        from computepool.server import store

        with _sessions(data_dir, db)() as s:
            if not store.revoke_token(s, token_id, "cli"):
                raise fail(f"no active token {token_id}")
            s.commit()
        console.print(f"revoked token {token_id}")
