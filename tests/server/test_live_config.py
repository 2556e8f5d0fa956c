"""The live pool's scheduler configuration is tied to its round length."""

from __future__ import annotations

import time

import pytest

from computepool.scheduler.loop import SchedulerConfig
from tests.server.conftest import LivePool, sqlite_live


def test_live_defaults_follow_the_round():
    cfg = SchedulerConfig.live(1.0)
    assert cfg.recompute_on_change
    assert cfg.min_reset_seconds == pytest.approx(1920 / 360)
    assert SchedulerConfig.live(360.0).min_reset_seconds == pytest.approx(1920.0)


@pytest.fixture
def las_pool(tmp_path):
    with sqlite_live(tmp_path, policy="las") as p:
        yield p


def test_new_job_gets_its_share_within_rounds_not_at_the_next_reset(las_pool):
    """A tenant's 1-accelerator job behind another tenant's gang holding every K80: with the
    simulator's defaults (reset at most every 1,920 s, allocation recomputed only then) it
    stayed queued for up to 32 minutes on a live pool. Under heavy load it then failed about
    1 run in 4: the starvation guard locked the newcomer out
    (``tests/scheduler/test_starvation_lockout.py``)."""
    p = las_pool
    a, b = p.tenant("holder"), p.tenant("newcomer")
    gang = p.submit(
        a, command="sleep 60", workers=9, accelerators_per_worker=4, accelerator_types=["K80"]
    ).json()["id"]
    p.wait_status(a, gang, "running", timeout=20)
    t0 = time.time()
    small = p.submit(b, command="sleep 60", accelerator_types=["K80"]).json()["id"]
    p.wait_status(b, small, "running", timeout=20)
    assert time.time() - t0 < 20
    for who, job in ((a, gang), (b, small)):
        p.client.post(f"/v1/jobs/{job}/cancel", headers=who)


@pytest.fixture
def sticky_pool(tmp_path):
    with sqlite_live(tmp_path, policy="fifo-sticky") as p:
        yield p


def _two_k80_jobs(p: LivePool, who: dict[str, str]) -> tuple[int, int]:
    spec = {"command": "sleep 60", "workers": 1, "accelerators_per_worker": 4}
    first = p.submit(who, accelerator_types=["K80"], **spec).json()["id"]
    p.wait_status(who, first, "running")
    second = p.submit(who, accelerator_types=["K80"], **spec).json()["id"]
    # the scheduler has decided about it: it waits for its tenant's quota
    held = lambda: (_held_by(p.job(who, second)) or "").startswith("quota:")  # noqa: E731
    p.wait(held, what="the second job held back by its quota")
    assert p.job(who, second)["status"] in ("queued", "admitted")
    return first, second


def _held_by(job: dict) -> str | None:
    why = job.get("pending_reason")
    return why["source"] if why else None


def _rounds_pass(p: LivePool, n: int) -> None:
    """Wait until the scheduler has run ``n`` more rounds (not a fixed time: a loaded machine
    runs fewer rounds a second)."""
    svc = p.client.app.state.ctx.service
    r0 = svc.rounds
    p.wait(lambda: svc.rounds >= r0 + n, timeout=60, what=f"{n} scheduler rounds")


def test_quota_raise_starts_a_waiting_job_without_another_event(sticky_pool):
    """The loop re-decided only when the job set changed: a quota raise left a job that only
    quota held back waiting until an unrelated submission."""
    p = sticky_pool
    who = p.tenant("grow", quotas={"K80": {"nominal": 4}})
    first, second = _two_k80_jobs(p, who)
    r = p.client.post("/v1/tenants", json={"name": "grow", "quotas": {"K80": {"nominal": 8}}},
                      headers=p.admin)  # fmt: skip
    assert r.status_code in (200, 201), r.text
    p.wait_status(who, second, "running", timeout=15)
    for j in (first, second):
        p.client.post(f"/v1/jobs/{j}/cancel", headers=who)


def test_cancelled_neighbour_frees_room_within_a_round(sticky_pool):
    p = sticky_pool
    who = p.tenant("pair", quotas={"K80": {"nominal": 4}})
    first, second = _two_k80_jobs(p, who)
    assert p.client.post(f"/v1/jobs/{first}/cancel", headers=who).status_code == 202
    p.wait_status(who, second, "running", timeout=15)
    p.client.post(f"/v1/jobs/{second}/cancel", headers=who)


def test_live_jobs_take_preemptible_and_deadline(las_pool):
    """The live job spec had neither: an on-demand job was preempted like any other."""
    p = las_pool
    a, b = p.tenant("ondemand"), p.tenant("other")
    spec = {"workers": 9, "accelerators_per_worker": 4, "accelerator_types": ["K80"]}
    gang = p.submit(a, command="sleep 60", preemptible=False, deadline_hours=2, **spec)
    assert gang.status_code == 201, gang.text
    gang = gang.json()["id"]
    p.wait_status(a, gang, "running", timeout=20)
    small = p.submit(b, command="sleep 60", accelerator_types=["K80"]).json()["id"]
    _rounds_pass(p, 20)  # many rounds: under las the gang would have been preempted
    assert p.job(a, gang)["status"] == "running" and p.job(a, gang)["preemptions"] == 0
    assert p.job(b, small)["status"] != "running"
    svc = p.client.app.state.ctx.service
    k = svc.index.of_id[gang]
    assert svc.index.workload.deadline[k] == pytest.approx(7200.0)
    assert not svc.index.workload.preemptible[k]
    bad = p.submit(a, command="true", deadline_hours=-1)
    assert bad.status_code == 422 and "deadline_hours" in bad.text
    for who, job in ((a, gang), (b, small)):
        p.client.post(f"/v1/jobs/{job}/cancel", headers=who)
