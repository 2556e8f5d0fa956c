"""The FastAPI app factory: one ``AppContext`` per app (engine, service, caches), no globals."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from computepool.server import store
from computepool.server.auth import TokenLookup
from computepool.server.db import JobRow
from computepool.server.db import sessions as make_sessions
from computepool.server.gateway import Gateway, GatewayConfig, empty_gateway
from computepool.server.gateway_metrics import GatewayMetrics
from computepool.server.guard import Guard, store_id_max
from computepool.server.service import LiveService
from computepool.server.writer import SubmissionWriter


class ApiError(Exception):
    """A 4xx answer naming the field and the reason."""

    def __init__(self, status: int, field: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


@dataclass
class AppContext:
    engine: Engine
    service: LiveService
    sessions: sessionmaker
    data_dir: Path
    writer: SubmissionWriter | None = None
    #: Per-tenant series of /metrics to anyone (else: an admin token sees all of them, a
    #: tenant's token its own, no token only the pool-wide ones).
    public_metrics: bool = False
    #: The largest job id this store can hold (PostgreSQL INTEGER: 2^31-1).
    id_max: int = 2**63 - 1
    #: Bearer token -> principal, read from the store on every request (no cache).
    tokens: TokenLookup | None = None
    #: The OpenAI-compatible gateway (``server/gateway.py``): services, limits, metering.
    gateway: Gateway | None = None
    _tenant_names: dict[int, str] = field(default_factory=dict)

    @property
    def lookup_is_remote(self) -> bool:
        return self.engine.dialect.name != "sqlite"

    def principal(self, token: str) -> store.Principal | None:
        """The token's principal, read from the store on every call: a revoked token is
        refused from the next request on, whichever process revoked it."""
        if self.tokens is None:
            self.tokens = TokenLookup(self.engine)
        return self.tokens(token)

    def tenant_name(self, tenant_id: int) -> str:
        name = self._tenant_names.get(tenant_id)
        if name is None:
            with self.sessions() as s:
                self._tenant_names = store.tenant_names(s)
            name = self._tenant_names.get(tenant_id, "?")
        return name


#: Names pydantic gives the branches of a union in an error's location (not field names).
_UNION_TAG = re.compile(r"^(constrained-str|str|int|list\[.*\]|function-\w+\[.*\])$")


def _field(loc: tuple) -> str:
    parts = [
        str(x)
        for x in loc
        if x not in ("body", "query", "path", "header") and not _UNION_TAG.match(str(x))
    ]
    return ".".join(parts) or str(loc[-1] if loc else "body")


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"error": exc.reason, "errors": [{"field": exc.field, "reason": exc.reason}]},
            status_code=exc.status,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "reason": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "reason": "invalid"}
        return JSONResponse(
            {"error": f"invalid request: {first['field']}: {first['reason']}", "errors": errors},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc.detail), "errors": [{"field": "path", "reason": str(exc.detail)}]},
            status_code=exc.status_code,
        )


class GuardedApp(FastAPI):
    """FastAPI with ``Guard`` outermost: its headers go on every answer, a 500 included."""

    def build_middleware_stack(self):  # noqa: ANN201 - Starlette's ASGI app type
        return Guard(super().build_middleware_stack())


def metrics_scope(ctx: AppContext, request: Request) -> str | bool:
    """Which per-tenant series a /metrics caller sees: True all, False none, or one tenant."""
    if ctx.public_metrics:
        return True
    auth = request.headers.get("authorization", "")
    p = ctx.principal(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
    if p is None:
        return False
    return True if p.is_admin else (p.tenant or False)


def create_app(
    engine: Engine,
    service: LiveService,
    data_dir: Path,
    public_metrics: bool = False,
    gateway: GatewayConfig | None = None,
) -> FastAPI:
    """The REST API over a store and a live service; the service starts with the app."""
    from computepool.server import (
        gateway as gateway_routes,
    )
    from computepool.server import (
        routes_admin,
        routes_agents,
        routes_jobs,
        routes_logs,
        routes_residency,
        ui,
    )

    ctx = AppContext(
        engine,
        service,
        make_sessions(engine),
        Path(data_dir),
        public_metrics=public_metrics,
        tokens=TokenLookup(engine),
        id_max=store_id_max(engine, JobRow.__table__.c.id),
    )
    m = service.metrics
    ctx.gateway = empty_gateway(
        GatewayMetrics(m.registry, m.tenant_registry), gateway or GatewayConfig()
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        service.start()
        idle = None if service.lease is None else service.lease.ttl_s
        ctx.writer = SubmissionWriter(
            ctx.sessions, service.write_lock, pool=service.pool, idle_s=idle
        )
        await ctx.gateway.start(ctx.sessions, service.write_lock)
        try:
            yield
        finally:
            await ctx.gateway.stop(ctx.sessions, service.write_lock)
            ctx.writer.close()
            if ctx.tokens is not None:
                ctx.tokens.close()
            service.stop()
            engine.dispose()

    app = GuardedApp(
        title="computepool",
        version="0.1.0",
        description="Live control plane of a heterogeneous accelerator pool: submit jobs, "
        "see them run, see what they used. Authenticate with `Authorization: Bearer <token>`.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_errors(app)
    app.include_router(routes_jobs.router)
    app.include_router(routes_logs.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_residency.router)
    app.include_router(routes_agents.router)
    app.include_router(gateway_routes.router)
    ui.install(app)  # the web dashboard at /

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        lease = service.lease
        return {
            "ok": True,
            "role": service.role,
            "epoch": lease.epoch if lease is not None and service.role == "leader" else None,
            "rounds": service.rounds,
            "sandbox": service.sandbox_public(),
        }

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus metrics. Per-tenant series: all to an admin token, a tenant's own to its
        token, none without one (unless the server runs with ``--public-metrics``)."""
        gw = ctx.gateway
        if gw is not None and gw.metrics is not None:
            gw.metrics.services(gw.directory.services())
        return Response(
            service.metrics.render(metrics_scope(ctx, request)),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return app
