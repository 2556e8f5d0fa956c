"""One writer per store: a second server refuses to start, a crashed holder is taken over,
an expired lease is taken over, and a server that lost its lease stops writing (fencing)."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import update

from computepool.server.db import JobRow, LeaseRow, sessions
from computepool.server.lease import LeaseHeld, StoreLease
from computepool.server.runtime import open_store
from tests.server.conftest import admin_token, bearer, kill_leftovers
from tests.server.serverproc import ServerProcess, shared_marks

MARK = 'echo "$CPOOL_JOB_ID" >> {marks}/starts; sleep {secs}'


def _tenant(url: str, admin: str, name: str) -> dict[str, str]:
    h = bearer(admin)
    httpx.post(url + "/v1/tenants", json={"name": name}, headers=h).raise_for_status()
    return bearer(httpx.post(url + f"/v1/tenants/{name}/tokens", headers=h).json()["token"])


@pytest.mark.timeout(180)
def test_second_server_refuses_and_a_crashed_holder_is_taken_over(db_url, tmp_path):
    data, marks = tmp_path / "data", shared_marks(tmp_path / "marks")
    admin = admin_token(data, db_url)
    args = ("--pool", "gavel-36x3", "--policy", "fifo-agnostic", "--round-seconds", "0.1",
            "--grace-seconds", "1", "--lease-seconds", "3")  # fmt: skip
    first = ServerProcess(data, db_url, *args)
    second = ServerProcess(data, db_url, *args, log=tmp_path / "second.log")
    third = ServerProcess(data, db_url, *args, log=tmp_path / "third.log")
    try:
        first.start()
        a = _tenant(first.url, admin, "acme")
        ids = []
        for i in range(12):
            cmd = MARK.format(marks=marks, secs=0.3 + 0.1 * (i % 5))
            spec = {"command": cmd, "workers": 2, "workdir": str(marks)}
            r = httpx.post(first.url + "/v1/jobs", json=spec, headers=a)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        with pytest.raises(RuntimeError, match="exited with 1"):
            second.start()
        said = (tmp_path / "second.log").read_text()
        assert "already served by" in said and f"pid {first.proc.pid}" in said
        assert "since" in said and ("cpool.db" in said or "postgresql" in said)
        first.kill9()  # its jobs run on; its lease is not renewed any more
        third.start()
        assert "took over the writer lease" in (tmp_path / "third.log").read_text()

        def done() -> bool:
            got = [httpx.get(f"{third.url}/v1/jobs/{i}", headers=a).json() for i in ids]
            return all(j["status"] in ("succeeded", "failed") for j in got)

        end = time.time() + 60
        while not done():
            assert time.time() < end, "jobs did not finish"
            time.sleep(0.2)
        got = [httpx.get(f"{third.url}/v1/jobs/{i}", headers=a).json() for i in ids]
    finally:
        for s in (first, second, third):
            s.stop()
        kill_leftovers(data)
    assert [j["status"] for j in got] == ["succeeded"] * len(ids)
    starts = Counter((marks / "starts").read_text().split())
    assert starts == Counter({str(i): 2 for i in ids}), "every worker started exactly once"


def _leases(url, tmp_path, ttl=5.0, clock=time.time):
    engine = open_store(tmp_path, url)
    S = sessions(engine)
    return engine, S, (lambda: StoreLease(S, "the-store", ttl, clock=clock))


def test_an_expired_lease_of_another_machine_is_taken_over_only_after_expiry(db_url, tmp_path):
    now = [1000.0]
    engine, S, lease = _leases(db_url, tmp_path, clock=lambda: now[0])
    try:
        a, b = lease(), lease()
        a.acquire()
        with S() as s:  # the holder runs on another machine: its pid says nothing here
            s.execute(update(LeaseRow).values(machine="other-boot|pid:[1]|1", host="gpu-7"))
            s.commit()
        now[0] += 4.9
        with pytest.raises(LeaseHeld, match="the-store is already served by host gpu-7 pid"):
            b.acquire()
        now[0] += 0.2  # past the expiry, not renewed
        b.acquire()
        assert b.held and b.epoch == 2
        with pytest.raises(Exception, match="lost the writer lease of store the-store"):
            a.renew()
        assert not a.held
        with pytest.raises(LeaseHeld):  # the old holder cannot take it back while b renews
            a.acquire()
        b.release()
        a.acquire()
        assert a.epoch == 3
    finally:
        engine.dispose()


def test_a_renewal_wins_over_a_take_over_decided_on_a_stale_read(db_url, tmp_path):
    now = [1000.0]
    engine, S, lease = _leases(db_url, tmp_path, clock=lambda: now[0])
    try:
        a, b = lease(), lease()
        a.acquire()
        with S() as s:
            s.execute(update(LeaseRow).values(machine=""))
            s.commit()
        now[0] += 6.0
        a.renew()  # late, but nobody took it over: still a's
        with pytest.raises(LeaseHeld):
            b.acquire()
    finally:
        engine.dispose()


def test_a_server_that_lost_its_lease_stops_scheduling_and_writes_nothing(live):
    svc = live.client.app.state.ctx.service
    a = live.tenant("acme")
    first = live.submit(a, command="true").json()["id"]
    live.wait_status(a, first, "succeeded")
    with live.client.app.state.ctx.engine.begin() as conn:  # paused past its expiry, and
        # another server took over
        conn.execute(update(LeaseRow).values(holder="another-server", epoch=LeaseRow.epoch + 1))
    j = live.submit(a, command="true").json()["id"]
    live.wait(lambda: svc.fenced is not None, 5, "fenced")
    assert "lost the writer lease" in str(svc.fenced)
    time.sleep(0.5)
    with svc.sessions() as s:
        row = s.get(JobRow, j)
        assert row.status == "queued" and row.started_at is None
    assert not svc._thread.is_alive()


@pytest.mark.timeout(60)
def test_a_real_server_that_loses_its_lease_exits_non_zero_saying_so(tmp_path):
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'cpool.db'}"
    admin_token(data, url)
    server = ServerProcess(data, url, "--config", "gavel-36x3", "--lease-seconds", "3")
    try:
        server.start()
        engine = open_store(data, url)
        with engine.begin() as conn:  # another server took the store over
            conn.execute(update(LeaseRow).values(holder="another", epoch=LeaseRow.epoch + 1))
        engine.dispose()
        assert server.proc.wait(timeout=20) == 1
    finally:
        server.stop()
        kill_leftovers(data)
    said = server.log.read_text()
    assert "lost the writer lease of store" in said and "writes nothing more" in said


def test_a_standby_waits_for_the_lease_and_takes_it_when_released(db_url, tmp_path):
    import threading

    engine, _S, lease = _leases(db_url, tmp_path, ttl=1.0)
    try:
        a, b = lease(), lease()
        a.acquire()
        waiter = threading.Thread(target=b.acquire, kwargs={"wait": True})
        waiter.start()
        time.sleep(0.5)
        assert not b.held and waiter.is_alive()  # a renews, b keeps waiting
        a.renew()
        a.release()
        waiter.join(timeout=5)
        assert b.held and b.epoch == 2
    finally:
        engine.dispose()


def test_a_holder_is_presumed_dead_only_when_its_process_on_this_machine_is_gone():
    import os
    import subprocess
    import sys

    from computepool.server.lease import Holder, holder_dead, machine_identity

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        h = Holder("x", "here", child.pid, machine_identity(child.pid), 0.0, 1e18, 1)
        assert h.machine and not holder_dead(h)
        other = Holder("x", "there", child.pid, "other-boot|pid:[1]|1", 0.0, 1e18, 1)
        assert not holder_dead(other)  # another machine's pid says nothing here
        reused = Holder("x", "here", os.getpid(), h.machine, 0.0, 1e18, 1)
        assert holder_dead(reused)  # that pid is another process now (started elsewhen)
    finally:
        child.kill()
        child.wait()
    assert holder_dead(h)


def test_a_holder_paused_past_its_lease_acts_on_the_cluster_no_more(db_url, tmp_path):
    from computepool.server.ha import FencedCluster
    from computepool.server.lease import LeaseLost

    engine, _S, lease = _leases(db_url, tmp_path, ttl=1.0)
    acted: list[str] = []

    class Backend:
        def apply(self, plan) -> None:
            acted.append("apply")

        def observe(self, now):
            acted.append("observe")

    try:
        a, b = lease(), lease()
        a.acquire()
        assert a.fresh()

        def ensure() -> None:  # as the service does it: renew unless surely still ours
            if not a.fresh():
                a.renew()

        driven = FencedCluster(Backend(), ensure)
        driven.apply(None)
        time.sleep(0.75)  # less than a third of its time to live left: renewed first
        assert not a.fresh()
        driven.observe(0.0)
        assert a.fresh() and acted == ["apply", "observe"]
        time.sleep(1.1)  # "paused": the lease expires and another server takes it over
        b.acquire()
        with pytest.raises(LeaseLost):
            driven.apply(None)
        with pytest.raises(LeaseLost):
            driven.observe(0.0)
        assert acted == ["apply", "observe"]  # nothing more reached the backend
    finally:
        engine.dispose()


def test_a_leader_that_cannot_confirm_its_lease_before_acting_stops(live, monkeypatch):
    from computepool.server.lease import LeaseLost

    svc = live.client.app.state.ctx.service

    def unreachable() -> None:
        raise OSError("the store does not answer")

    monkeypatch.setattr(svc.lease, "renew", unreachable)
    svc.lease.valid_until = time.monotonic() - 1.0  # its last renewal is too old to act on
    with pytest.raises(LeaseLost, match="cannot confirm the writer lease of store"):
        svc._ensure_lease()
    assert "the store does not answer" in str(svc.fenced)
    live.wait(lambda: not svc._thread.is_alive(), 5, "the loop to stop")


def test_the_live_loop_drives_the_backend_through_the_lease_fence(live):
    """The loop that applies the scheduler's plans (not only the scheduler) goes through the
    fence, and the starts a backend could not do come back through it."""
    from computepool.scheduler.contract import Applied
    from computepool.server.ha import FencedCluster

    svc = live.client.app.state.ctx.service
    assert isinstance(svc.loop.cluster, FencedCluster)

    class Backend:
        def apply(self, plan) -> Applied:
            return Applied(start_failed={7: "no room"})

    assert FencedCluster(Backend(), lambda: None).apply(None).start_failed == {7: "no room"}
