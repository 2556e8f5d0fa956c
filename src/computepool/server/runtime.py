"""Assemble a live pool from settings: store, pool, policy, checks, service and API."""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from computepool.policies.registry import policy_names
from computepool.server.db import make_engine, migrate, sessions

log = logging.getLogger("computepool.server")

FALLBACK_POOL = "gavel-36x3"
PREFERRED_POOL = "automotive-demo"
BACKENDS = ("local", "ray", "ray://HOST:PORT", "federated")


@dataclass(frozen=True)
class ServeSettings:
    data_dir: Path
    db_url: str | None = None
    #: Shipped pool name or a pool YAML path; default: the shipped demo pool.
    pool: str | None = None
    backend: str = "local"
    policy: str = "fifo-sticky"
    #: Admission checks by name (``server/checks.py``); ``("off",)`` for none.
    checks: tuple[str, ...] = ("residency",)
    round_seconds: float = 1.0
    grace_seconds: float = 10.0
    #: Time to live of the store's writer lease (one server per store; ``server/lease.py``).
    lease_seconds: float = 15.0
    #: Several servers share the (PostgreSQL) store: serve the API while another leads, and
    #: take over when its lease comes free (docs/ha.md).
    standby: bool = False
    stop_jobs_on_exit: bool = False
    throughputs: str = "gavel"
    #: Placement profile (``cpool pack --policies``: bestfit, fgd, ...) or ``slots``.
    placement: str = "bestfit"
    #: Where workers keep checkpoints (Ray backend: a path every Ray node can write);
    #: None: ``data_dir/checkpoints``.
    checkpoint_dir: Path | None = None
    #: A workload YAML whose ``services:`` run as (emulated) replicas beside the jobs.
    services: str | None = None
    #: Worker sandbox (local backend): ``auto`` (when the machine can), ``on`` (or refuse to
    #: start), ``off``.
    sandbox: str = "auto"
    #: Run several tenants' jobs even when workers are not sandboxed (logged as a warning).
    allow_unsandboxed: bool = False
    sandbox_uid_base: int = 200_000
    sandbox_network: bool = False
    #: Extra read-only directories in every sandbox (e.g. a Python installation).
    sandbox_read_only: tuple[str, ...] = ()
    #: Shared datasets (name, host directory) a job that lists them sees read-only.
    sandbox_datasets: tuple[tuple[str, str], ...] = ()
    #: Per-tenant series of /metrics without a token (default: admin token only).
    public_metrics: bool = False
    #: Federated backend: the lease an agent's heartbeats renew (docs/federation.md).
    agent_lease_seconds: float = 15.0
    #: The gateway's limits for a tenant that sets none (None: unlimited).
    gateway_requests_per_s: float | None = None
    gateway_tokens_per_min: float | None = None
    #: A token price list (YAML, as ``catalog/data/serving/token_prices.yaml``).
    token_prices: str | None = None


def is_ray(backend: str) -> bool:
    return backend == "ray" or backend.startswith("ray://")


def default_data_dir() -> Path:
    return Path(os.environ.get("CPOOL_HOME", ".cpool"))


def db_url(data_dir: Path, url: str | None = None) -> str:
    return url or f"sqlite:///{Path(data_dir).resolve() / 'cpool.db'}"


def default_pool() -> str:
    shipped = resources.files("computepool.catalog") / "data" / "pools" / f"{PREFERRED_POOL}.yaml"
    return PREFERRED_POOL if shipped.is_file() else FALLBACK_POOL


def open_store(data_dir: Path, url: str | None = None) -> Engine:
    """The engine for the store, its schema migrated to the newest revision. An SQLite store
    file (and its journal files) is the server's alone: mode 0600."""
    engine = make_engine(db_url(data_dir, url))
    migrate(engine)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        db = Path(engine.url.database)
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if p.exists():
                os.chmod(p, 0o600)
    return engine


def private_data_dir(data_dir: Path) -> Path:
    """Make the data directory (mode 0700: the store, runs, logs, checkpoints are in it)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    return data_dir


def sandbox_status(settings: ServeSettings):
    """Probe the worker sandbox once, and say at start what workers get."""
    from computepool.backends.sandbox import SandboxConfig, probe

    cfg = SandboxConfig(
        mode=settings.sandbox,
        allow_unsandboxed=settings.allow_unsandboxed,
        uid_base=settings.sandbox_uid_base,
        share_network=settings.sandbox_network,
        read_only=tuple(settings.sandbox_read_only),
        datasets=tuple(settings.sandbox_datasets),
    )
    st = probe(cfg)
    if st.enabled:
        log.info(
            "workers sandboxed: bubblewrap, one unprivileged user per tenant (uid %d + tenant "
            "id), limits by %s",
            cfg.uid_base,
            st.limits,
        )
    else:
        log.warning("%s", st.warning)
    return st


def build_app(settings: ServeSettings) -> FastAPI:
    from computepool.catalog.pools import load_pool
    from computepool.catalog.throughputs import load_throughputs
    from computepool.placement.profiles import profile_names
    from computepool.server.app import create_app
    from computepool.server.checks import resolve_checks
    from computepool.server.lease import StoreLease, store_label
    from computepool.server.residency_store import reload_approvals, residency_check, restore
    from computepool.server.service import LiveService, LoopConfig

    federated = settings.backend == "federated"
    if settings.backend != "local" and not is_ray(settings.backend) and not federated:
        raise ValueError(f"unknown backend {settings.backend!r}; known: {', '.join(BACKENDS)}")
    if federated and settings.services:
        raise ValueError(
            "--services runs services with --backend local or ray; with --backend federated "
            "their replicas would run on this machine, not on the agents' clusters"
        )
    if settings.sandbox not in ("auto", "on", "off"):
        raise ValueError(f"unknown --sandbox {settings.sandbox!r}; known: auto, on, off")
    if settings.policy not in policy_names():
        raise ValueError(f"unknown policy {settings.policy!r}; known: {', '.join(policy_names())}")
    factory = None
    if is_ray(settings.backend):
        if settings.pool:
            raise ValueError(
                "--pool: with the Ray backend the pool is read from the Ray cluster "
                "(node resources accel:<TYPE> and labels cpool/region, cpool/island)"
            )
        from computepool.backends.ray_open import open_ray

        pool, factory = open_ray(settings.backend, os.environ, settings.checkpoint_dir)
    elif federated:
        from computepool.server.federated import federated_factory

        pool = load_pool(settings.pool or default_pool())
        factory = federated_factory(settings.agent_lease_seconds)
    else:
        pool = load_pool(settings.pool or default_pool())
    audit_records: deque = deque()
    checks = resolve_checks(settings.checks, pool, on_record=audit_records.append)
    placements = ["slots", *profile_names()]
    if settings.placement not in placements:
        raise ValueError(
            f"unknown placement {settings.placement!r}; known: {', '.join(placements)}"
        )
    tp = load_throughputs(settings.throughputs, accelerators=pool.accelerators, with_pairs=False)
    data_dir = private_data_dir(settings.data_dir)
    local = settings.backend == "local"
    sandbox = sandbox_status(settings) if local else None
    engine = open_store(data_dir, settings.db_url)
    check = residency_check(checks)
    if check is not None:  # approvals and person counters on record survive a restart
        restore(check, sessions(engine))
    serving = None
    if settings.services:
        from computepool.serving.config import read_serving
        from computepool.serving.live_pool import LiveServingController

        sw = read_serving(settings.services, live=True)
        if sw is None:
            raise ValueError(f"{settings.services}: no services: section")
        serving = LiveServingController(pool, sw, log_dir=data_dir / "services")
    service = LiveService(
        pool,
        tp,
        sessions(engine),
        data_dir,
        LoopConfig(
            round_seconds=settings.round_seconds,
            grace_seconds=settings.grace_seconds,
            policy=settings.policy,
            stop_jobs_on_exit=settings.stop_jobs_on_exit,
            placement=settings.placement,
        ),
        checks=checks,
        audit_records=audit_records,
        cluster_factory=factory,
        serving=serving,
        sandbox=sandbox,
    )
    if federated:
        from computepool.server.federated import wire_service

        wire_service(service, check, sessions(engine))
    if serving is not None:  # replicas take device slots of the placer, as jobs do
        serving.bind_placer(service.placer)
        if is_ray(settings.backend):  # ... and run on the Ray node that owns those devices
            from computepool.backends.ray_replicas import ray_runners

            serving.bind_runner(ray_runners(service.cluster, data_dir / "services"))
    app = create_app(
        engine,
        service,
        data_dir,
        public_metrics=settings.public_metrics,
        gateway=gateway_config(settings),
    )
    if serving is not None:
        mount_services(app, serving)
    # one writer per store: taken when the service starts (``cpool serve``: before uvicorn)
    label = store_label(db_url(data_dir, settings.db_url))
    service.lease = StoreLease(sessions(engine), label, settings.lease_seconds)
    service.standby = settings.standby
    if check is not None:  # a standby that takes over reads what the leader recorded
        service.on_lead = partial(restore, check, sessions(engine))
        service.on_refresh = partial(reload_approvals, check, sessions(engine))
    return app


def gateway_config(settings: ServeSettings):
    """The gateway's settings (the shipped or given token price list is read here: a bad
    file stops the server at start, naming the file and field)."""
    from computepool.catalog.token_prices import load_token_prices
    from computepool.server.gateway import GatewayConfig
    from computepool.server.ratelimit import Limits

    for name in ("gateway_requests_per_s", "gateway_tokens_per_min"):
        v = getattr(settings, name)
        if v is not None and not v > 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0")
    load_token_prices(settings.token_prices)
    return GatewayConfig(
        default_limits=Limits(settings.gateway_requests_per_s, settings.gateway_tokens_per_min),
        token_prices=settings.token_prices,
    )


def mount_services(app: FastAPI, serving) -> None:
    """The live services behind the gateway (``/v1/models``, ``/v1/completions``,
    ``/v1/chat/completions``: tenant tokens, rate limits, metering) and their status at
    ``GET /services`` (admin: replicas, health, restarts, engine, devices). There is no other
    door to a replica: an unauthenticated per-service endpoint would bypass the gateway's
    tokens, limits and metering."""
    from fastapi import Depends

    from computepool.server.routes_admin import admin
    from computepool.server.service_directory import LiveDirectory

    service = app.state.ctx.service
    lease = getattr(service, "lease", None)
    app.state.ctx.gateway.directory = LiveDirectory(
        serving,
        wake=service.wake,
        # a server started with --standby that does not (or no longer) hold the lease
        leading=lambda: not (service.standby or service.fenced) or service.role == "leader",
        retry_s=lease.ttl_s if lease is not None else 5.0,
    )

    @app.get("/services", tags=["services"], dependencies=[Depends(admin)])
    def services_status() -> list[dict]:
        return serving.status()
