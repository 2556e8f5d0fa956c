"""A live pool (real store, real API) served by uvicorn on loopback, its gateway routed to
OpenAI-compatible TEST DOUBLES of replicas (``openai_double.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from computepool.server.runtime import ServeSettings, build_app
from computepool.server.service_directory import ServiceInfo, StaticDirectory
from tests.gateway.openai_double import double_app, free_port, serve_double
from tests.server.conftest import admin_token, bearer, kill_leftovers
from tests.server.conftest import postgres as postgres  # noqa: F401 - the fixture, for pg tests


@dataclass
class Gw:
    url: str
    http: httpx.Client
    admin: dict[str, str]
    app: object
    doubles: dict[str, object]

    @property
    def gateway(self):
        return self.app.state.ctx.gateway

    def tenant(self, name: str, **body) -> dict[str, str]:
        r = self.http.post("/v1/tenants", json={"name": name, **body}, headers=self.admin)
        assert r.status_code in (200, 201), r.text
        r = self.http.post(f"/v1/tenants/{name}/tokens", headers=self.admin)
        assert r.status_code == 201, r.text
        return bearer(r.json()["token"])

    def route(self, services: list[ServiceInfo], urls: dict[str, list[str]]) -> None:
        self.gateway.directory = StaticDirectory(services, urls)

    def flush(self) -> None:
        ctx = self.app.state.ctx
        self.gateway.meter.flush(ctx.sessions)


def serve_gateway(tmp_path: Path, url: str | None = None, **settings) -> tuple[object, str]:
    data = tmp_path / "data"
    url = url or f"sqlite:///{tmp_path / 'c.db'}"
    tok = admin_token(data, url)
    app = build_app(
        ServeSettings(
            data_dir=data,
            db_url=url,
            pool="gavel-36x3",
            round_seconds=0.2,
            stop_jobs_on_exit=True,
            allow_unsandboxed=True,
            **settings,
        )  # fmt: skip
    )
    return app, tok


@pytest.fixture
def gw(tmp_path) -> Iterator[Gw]:
    """The gateway with three services on test doubles: ``chat-7b`` (shared, 2 replicas),
    ``private-a`` (tenant oem-a's), ``no-usage`` (shared; its replica reports no usage)."""
    yield from _gateway(tmp_path, None)


@pytest.fixture
def gw_pg(tmp_path, postgres) -> Iterator[Gw]:  # noqa: F811 - the imported fixture
    """``gw`` on a throwaway PostgreSQL store."""
    from computepool.server.runtime import open_store

    name = postgres.migrated_template(lambda u: open_store(tmp_path, u).dispose())
    postgres.truncate_all(postgres.url(name))
    yield from _gateway(tmp_path, postgres.url(name))


def _gateway(tmp_path: Path, db: str | None) -> Iterator[Gw]:
    app, tok = serve_gateway(tmp_path, db)
    a = double_app("a", "chat-7b")
    b = double_app("b", "chat-7b")
    p = double_app("p", "private-a")
    n = double_app("n", "no-usage", usage=False)
    try:
        with (
            serve_double(a) as ua,
            serve_double(b) as ub,
            serve_double(p) as up,
            serve_double(n) as un,
            serve_double(app, lifespan="on") as base,
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            g = Gw(base, http, bearer(tok), app, {"a": a, "b": b, "p": p, "n": n})
            g.route(
                [
                    ServiceInfo("chat-7b", "default", "qwen2.5-7b", ttft_slo_s=2.0, desired=2),
                    ServiceInfo("private-a", "oem-a", "qwen2.5-3b", desired=1),
                    ServiceInfo("no-usage", "*", "llama-3.1-8b", desired=1),
                    ServiceInfo("down", "default", "qwen2.5-7b", desired=1),
                ],
                {"chat-7b": [ua, ub], "private-a": [up], "no-usage": [un], "down": []},
            )
            yield g
    finally:
        kill_leftovers(tmp_path / "data")


def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
