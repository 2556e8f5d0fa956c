"""Fixtures for the live control plane: a real store (SQLite file or throwaway PostgreSQL),
the real service and API in-process (TestClient), jobs as real processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from computepool.backends import attempts as att
from computepool.server import store
from computepool.server.db import sessions
from computepool.server.runtime import ServeSettings, build_app, open_store
from tests.pgcluster import ThrowawayPostgres

TEST_POOL = "gavel-36x3"  # 9 nodes x 4 of each of V100, P100, K80 in one region


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    try:
        pg = ThrowawayPostgres().start()
    except FileNotFoundError as exc:
        pytest.skip(f"no PostgreSQL server binaries on this machine: {exc}")
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cpool.db'}"
    pg = request.getfixturevalue("postgres")
    name = pg.migrated_template(lambda u: open_store(tmp_path, u).dispose())
    pg.truncate_all(pg.url(name))
    return pg.url(name)


def admin_token(data_dir: Path, url: str) -> str:
    engine = open_store(data_dir, url)
    with sessions(engine)() as s:
        _, tok = store.create_token(s, "admin", None, "test")
        s.commit()
    engine.dispose()
    return tok


def kill_leftovers(data_dir: Path) -> None:
    for rec in att.scan(data_dir / "runs", wait_for_pid_s=0):
        att.kill_attempt(rec)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LivePool:
    client: TestClient
    admin: dict[str, str]
    data_dir: Path

    def tenant(self, name: str, **body) -> dict[str, str]:
        r = self.client.post("/v1/tenants", json={"name": name, **body}, headers=self.admin)
        assert r.status_code in (200, 201), r.text
        r = self.client.post(f"/v1/tenants/{name}/tokens", headers=self.admin)
        assert r.status_code == 201, r.text
        return bearer(r.json()["token"])

    def submit(self, who: dict[str, str], **spec):
        spec.setdefault("command", "true")
        return self.client.post("/v1/jobs", json=spec, headers=who)

    def job(self, who: dict[str, str], job_id: int) -> dict:
        r = self.client.get(f"/v1/jobs/{job_id}", headers=who)
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or cond}")

    def wait_status(self, who, job_id: int, *status: str, timeout: float = 20.0) -> dict:
        try:
            self.wait(
                lambda: self.job(who, job_id)["status"] in status, timeout, f"job {job_id} {status}"
            )
        except AssertionError as exc:  # say where it stands: status, why it waits, events
            j = self.job(who, job_id)
            events = [(e["kind"], e["detail"][:120]) for e in j.get("events", [])[-8:]]
            raise AssertionError(
                f"{exc}: it is {j['status']}, pending reason {j.get('pending_reason')}, "
                f"last events {events}"
            ) from None
        return self.job(who, job_id)

    def count_jobs(self) -> int:
        return len(
            self.client.get("/v1/jobs", params={"limit": 1000}, headers=self.admin).json()["jobs"]
        )


def open_live(data_dir: Path, url: str, **kw) -> tuple[TestClient, str]:
    tok = admin_token(data_dir, url)
    settings = ServeSettings(
        data_dir=data_dir,
        db_url=url,
        pool=TEST_POOL,
        round_seconds=kw.pop("round_seconds", 0.1),
        grace_seconds=kw.pop("grace_seconds", 1.0),
        stop_jobs_on_exit=kw.pop("stop_jobs_on_exit", True),
        # sandboxed where the machine can (root, bubblewrap); elsewhere the tests' tenants
        # share the test user
        allow_unsandboxed=kw.pop("allow_unsandboxed", True),
        **kw,
    )
    return TestClient(build_app(settings)), tok


@contextmanager
def sqlite_live(tmp_path: Path, **kw) -> Iterator[LivePool]:
    """An in-process live pool on a SQLite store under ``tmp_path`` (``open_live``'s options);
    its workers are killed on the way out."""
    data = tmp_path / "data"
    client, tok = open_live(data, f"sqlite:///{tmp_path / 'c.db'}", **kw)
    try:
        with client:
            yield LivePool(client, bearer(tok), data)
    finally:
        kill_leftovers(data)


@pytest.fixture
def live(db_url, tmp_path) -> Iterator[LivePool]:
    data = tmp_path / "data"
    client, tok = open_live(data, db_url)
    try:
        with client:
            yield LivePool(client, bearer(tok), data)
    finally:
        kill_leftovers(data)


@pytest.fixture
def live_sqlite(tmp_path) -> Iterator[LivePool]:
    data = tmp_path / "data"
    client, tok = open_live(data, f"sqlite:///{tmp_path / 'cpool.db'}")
    try:
        with client:
            yield LivePool(client, bearer(tok), data)
    finally:
        kill_leftovers(data)


@pytest.fixture(scope="module")
def live_shared(tmp_path_factory) -> Iterator[LivePool]:
    """One SQLite-backed pool for a whole module (tests that must not change it)."""
    tmp = tmp_path_factory.mktemp("live")
    data = tmp / "data"
    client, tok = open_live(data, f"sqlite:///{tmp / 'cpool.db'}")
    try:
        with client:
            yield LivePool(client, bearer(tok), data)
    finally:
        kill_leftovers(data)
