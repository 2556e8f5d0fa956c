"""Assemble a live pool from settings: store, pool, policy, checks, service and API."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from computepool.policies.registry import policy_names
from computepool.server.db import make_engine, migrate, sessions

FALLBACK_POOL = "gavel-36x3"
PREFERRED_POOL = "automotive-demo"
BACKENDS = ("local", "ray", "ray://HOST:PORT")


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
    stop_jobs_on_exit: bool = False
    throughputs: str = "gavel"
    #: Placement profile (``cpool pack --policies``: bestfit, fgd, ...) or ``slots``.
    placement: str = "bestfit"
    #: Where workers keep checkpoints (Ray backend: a path every Ray node can write);
    #: None: ``data_dir/checkpoints``.
    checkpoint_dir: Path | None = None
    #: A workload YAML whose ``services:`` run as (emulated) replicas beside the jobs.
    services: str | None = None
    #: Per-tenant series of /metrics without a token (default: admin token only).
    public_metrics: bool = False


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
    """The engine for the store, its schema migrated to the newest revision."""
    engine = make_engine(db_url(data_dir, url))
    migrate(engine)
    return engine


def build_app(settings: ServeSettings) -> FastAPI:
    from computepool.catalog.pools import load_pool
    from computepool.catalog.throughputs import load_throughputs
    from computepool.placement.profiles import profile_names
    from computepool.server.app import create_app
    from computepool.server.checks import resolve_checks
    from computepool.server.residency_store import residency_check, restore
    from computepool.server.service import LiveService, LoopConfig

    if settings.backend != "local" and not is_ray(settings.backend):
        raise ValueError(f"unknown backend {settings.backend!r}; known: {', '.join(BACKENDS)}")
    if settings.policy not in policy_names():
        raise ValueError(f"unknown policy {settings.policy!r}; known: {', '.join(policy_names())}")
    factory = None
    if is_ray(settings.backend):
        if settings.pool:
            raise ValueError(
                "--config: with the Ray backend the pool is read from the Ray cluster "
                "(node resources accel:<TYPE> and labels cpool/region, cpool/island)"
            )
        from computepool.backends.ray_backend import open_ray

        pool, factory = open_ray(settings.backend, os.environ, settings.checkpoint_dir)
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
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_store(data_dir, settings.db_url)
    check = residency_check(checks)
    if check is not None:  # approvals and person counters on record survive a restart
        restore(check, sessions(engine))
    serving = None
    if settings.services:
        from computepool.serving.config import read_serving
        from computepool.serving.live_pool import LiveServingController

        sw = read_serving(settings.services)
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
    )
    app = create_app(engine, service, data_dir, public_metrics=settings.public_metrics)
    if serving is not None:
        mount_services(app, serving)
    return app


def mount_services(app: FastAPI, serving) -> None:
    """A stable endpoint per service at ``/services/NAME/v1/completions`` (forwarded to its
    healthy replicas) and their status at ``GET /services``."""
    from computepool.serving.http import endpoint_app

    @app.get("/services")
    def services_status() -> list[dict]:
        return serving.status()

    for st in serving.states:
        name = st.spec.name
        app.mount(f"/services/{name}", endpoint_app(serving.endpoints_of(name), name))
