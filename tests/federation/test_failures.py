"""Agents that die, stop, or are cut off: their jobs requeue on another cluster, and no job
ever runs twice (real processes on loopback: a control plane, two agents, workers that leave
a trace of when they ran)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from computepool.federation.faults import Proxy, overlaps, runs_of, worker_argv
from computepool.federation.loopback import ClusterDef, Loopback

LEASE_S = 2.0
CLUSTERS = (
    ClusterDef("alpha", "cn-ulanqab", "H800", nodes=1),
    ClusterDef("beta", "cn-ulanqab", "A800", nodes=1),
)
ACCEL = {"alpha": "H800", "beta": "A800"}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fed")
    lb = Loopback(root, CLUSTERS, lease_s=LEASE_S, grace_s=1.0, tenants={"acme": []}).setup()
    proxies: dict[str, Proxy] = {}
    try:
        lb.start_server()
        for c in CLUSTERS:
            proxies[c.name] = Proxy(lb.port)
            lb.start_agent(c.name, f"http://127.0.0.1:{proxies[c.name].port}")
        lb.wait_clusters([c.name for c in CLUSTERS])
        lb.proxies = proxies  # type: ignore[attr-defined]
        trace = root / "trace"
        trace.mkdir()
        lb.trace = trace  # type: ignore[attr-defined]
        yield lb
    finally:
        lb.close()
        for p in proxies.values():
            p.close()


def wait_for(what: str, ok, timeout: float = 30.0, every: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = ok()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def cluster_of(node: str) -> str:
    return node.split("-")[0]


def start_long(fed: Loopback, accel: str | None = None) -> tuple[int, str]:
    spec = {
        "name": "long",
        "command": worker_argv(fed.trace, 60),
        "accelerators_per_worker": 8,
        **({"accelerator_types": [accel]} if accel else {}),
    }
    jid = fed.submit("acme", spec)
    runs = wait_for("first run", lambda: runs_of(fed.trace, jid))
    return jid, cluster_of(runs[0][2])


def moved(fed: Loopback, jid: int, away_from: str):
    def ok():
        runs = runs_of(fed.trace, jid)
        return runs if any(cluster_of(r[2]) != away_from for r in runs) else None

    return wait_for("a run on another cluster", ok, timeout=LEASE_S * 6)


def cancel(fed: Loopback, jid: int) -> None:
    httpx.post(
        f"{fed.url}/v1/jobs/{jid}/cancel", headers=fed.auth(fed.tokens["acme"]), timeout=10
    ).raise_for_status()
    wait_for("cancelled", lambda: fed.job("acme", jid)["status"] == "cancelled")


def epoch(fed: Loopback, name: str) -> int:
    return next(c for c in fed.clusters_state() if c["name"] == name)["epoch"]


def assert_once(fed: Loopback, jid: int, settle_s: float = 0.6) -> list:
    time.sleep(settle_s)  # a worker the fence missed would still be writing
    runs = runs_of(fed.trace, jid)
    assert len(runs) >= 2, runs
    assert overlaps(runs) == [], f"job {jid} ran twice: {runs}"
    return runs


def test_killed_agent_jobs_requeue_elsewhere_never_twice(fed):
    jid, first = start_long(fed)
    time.sleep(0.8)  # a checkpoint or two
    fed.signal_agent(first, signal.SIGKILL)
    moved(fed, jid, first)
    runs = assert_once(fed, jid)
    assert runs[-1][3] > 1, "the requeued run resumed from its checkpoint"
    assert any(c["name"] == first and c["state"] == "lost" for c in fed.clusters_state())
    cancel(fed, jid)
    fed.agents.pop(first)
    fed.start_agent(first, f"http://127.0.0.1:{fed.proxies[first].port}")
    fed.wait_clusters([first])


def test_paused_agent_stops_its_workers_and_does_not_report_them(fed):
    jid, first = start_long(fed)
    before = epoch(fed, first)
    fed.signal_agent(first, signal.SIGSTOP)
    try:
        runs = moved(fed, jid, first)
        old = [r for r in runs if cluster_of(r[2]) == first]
        new = [r for r in runs if cluster_of(r[2]) != first]
        assert old[-1][1] < new[0][0], "the paused agent's worker was fenced first"
    finally:
        fed.signal_agent(first, signal.SIGCONT)
    wait_for("registered again", lambda: epoch(fed, first) > before)
    fed.wait_clusters([first])
    time.sleep(LEASE_S / 2)
    job = fed.job("acme", jid)
    assert job["status"] == "running"
    assert job["flavor"].endswith(ACCEL[next(c for c in ACCEL if c != first)])
    assert_once(fed, jid)
    cancel(fed, jid)


def test_cut_off_agent_fenced_then_back_gets_work(fed):
    jid, first = start_long(fed)
    before = epoch(fed, first)
    fed.proxies[first].cut()
    try:
        moved(fed, jid, first)
        assert_once(fed, jid)
    finally:
        fed.proxies[first].restore()
    wait_for("registered again", lambda: epoch(fed, first) > before)
    cancel(fed, jid)
    again, where = start_long(fed, ACCEL[first])
    assert where == first, "the cluster gets work again"
    cancel(fed, again)


def test_control_plane_crash_requeues_once_clusters_are_back(fed):
    jid, first = start_long(fed)
    time.sleep(0.5)
    fed.kill_server()
    crashed = time.time()
    fed.start_server(port=fed.port)  # the agents' proxies point there
    fed.wait_clusters([c.name for c in CLUSTERS])
    runs = wait_for("a run after the restart", lambda: [r for r in runs_of(fed.trace, jid)
                                                        if r[0] > crashed])  # fmt: skip
    assert runs
    assert_once(fed, jid)
    cancel(fed, jid)


def test_no_job_ran_twice_in_any_failure(fed):
    """Over every job of the tests above: never two runs alive at once."""
    jobs = {int(p.name.split("-")[0]) for p in Path(fed.trace).iterdir()}
    assert jobs
    for j in jobs:
        assert overlaps(runs_of(fed.trace, j)) == [], j
