"""The live loop applies the scheduler's plan; a start the backend could not do (this machine's
trouble, not the job's) is an observation of the next round: the job waits again with the
reason, is retried, and fails only after several starts in a row failed."""

from __future__ import annotations

import pytest

from computepool.backends import local
from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live


def kinds(job: dict) -> list[str]:
    return [e["kind"] for e in job["events"]]


@pytest.fixture
def pool(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'cpool.db'}"
    client, tok = open_live(data, url, allow_unsandboxed=True)
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            yield live, live.tenant("acme")
    finally:
        kill_leftovers(data)


def _flaky_ports(monkeypatch, failures: int) -> list[int]:
    """The rendezvous port cannot be reserved for the next ``failures`` starts."""
    real, calls = local.reserve_port, []

    def reserve(*a, **kw):
        calls.append(1)
        if len(calls) <= failures:
            raise OSError(24, "Too many open files")
        return real(*a, **kw)

    monkeypatch.setattr(local, "reserve_port", reserve)
    return calls


def test_a_start_that_failed_is_observed_and_the_job_waits_and_starts_again(pool, monkeypatch):
    live, a = pool
    _flaky_ports(monkeypatch, failures=1)
    j = live.submit(a, command="echo fine").json()["id"]
    job = live.wait_status(a, j, "succeeded")
    assert kinds(job) == ["queued", "admitted", "running", "requeued", "running", "succeeded"]
    requeued = job["events"][3]
    assert requeued["detail"].startswith("start failed: error starting it: OSError")
    assert "Too many open files" in requeued["detail"]
    assert job["attempts"] >= 1 and job["exit_code"] == 0


def test_a_start_that_keeps_failing_fails_the_job_with_the_reason(pool, monkeypatch):
    live, a = pool
    _flaky_ports(monkeypatch, failures=local.MAX_START_FAILURES)
    j = live.submit(a, command="echo fine").json()["id"]
    job = live.wait_status(a, j, "failed")
    n = local.MAX_START_FAILURES
    assert kinds(job) == [
        "queued",
        "admitted",
        *["running", "requeued"] * (n - 1),
        "running",
        "failed",
    ]
    assert "Too many open files" in job["reason"] and f"{n} starts in a row" in job["reason"]
    later = live.submit(a, command="echo later").json()["id"]  # the pool goes on
    live.wait_status(a, later, "succeeded")
