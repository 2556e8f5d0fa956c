"""Quotas, borrowing and reclaim decide the same in the simulator and the live pool: one
cohort (tenant a: nominal 8 K80, may borrow 8; tenant b: nominal 8 K80), a's three 8-K80
jobs, then b's job. Both must run a1 and a2 (a2 on b's lent quota), hold a3, and when b's
job arrives preempt a2 (the newest borrower) and start b1."""

from __future__ import annotations

import textwrap

import pytest

from computepool.sim.run import SimConfig
from computepool.sim.runner import load_inputs, run_policy
from tests.server.conftest import LivePool, sqlite_live

TENANTS = """
tenants:
  - {name: a, cohort: c, quotas: {K80: "8:8"}}
  - {name: b, cohort: c, quotas: {K80: 8}}
"""
JOBS = """
defaults: {job_type: generic, accelerators: [K80], reference_accelerator: K80, workers: 2, accel_per_worker: 4}
jobs:
  - {id: a1, tenant: a, duration_hours: 2}
  - {id: a2, tenant: a, duration_hours: 2, arrival: 1}
  - {id: a3, tenant: a, duration_hours: 2, arrival: 2}
  - {id: b1, tenant: b, duration_hours: 1, arrival_hours: 0.5}
"""


def outcome(started: bool, preemptions: int) -> str:
    """What happened to a job by the time b1 started."""
    return "preempted" if preemptions else "running" if started else "waiting"


def simulated(tmp_path) -> dict[str, str]:
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(TENANTS) + textwrap.dedent(JOBS))
    inputs = load_inputs("gavel-36x3", str(path))
    res = run_policy(inputs, "fifo-sticky", SimConfig(round_seconds=60.0))
    b_start = res.first_start[3]
    ids = ["a1", "a2", "a3", "b1"]
    assert not (res.end <= b_start).any()  # nothing ended before b1 started
    return {
        j: outcome(bool(res.first_start[i] <= b_start), int(res.preemptions[i]))
        for i, j in enumerate(ids)
    }


@pytest.fixture
def pool(tmp_path):
    with sqlite_live(tmp_path, policy="fifo-sticky") as p:
        yield p


def live(p: LivePool) -> dict[str, str]:
    who = {
        "a": p.tenant("a", cohort="c", quotas={"K80": {"nominal": 8, "borrowing_limit": 8}}),
        "b": p.tenant("b", cohort="c", quotas={"K80": {"nominal": 8}}),
    }
    spec = {"workers": 2, "accelerators_per_worker": 4, "accelerator_types": ["K80"]}
    ids = {}
    for name in ("a1", "a2", "a3"):
        ids[name] = p.submit(who["a"], name=name, command="sleep 60", **spec).json()["id"]
        if name != "a3":
            p.wait_status(who["a"], ids[name], "running")
    ids["b1"] = p.submit(who["b"], name="b1", command="sleep 60", **spec).json()["id"]
    p.wait_status(who["b"], ids["b1"], "running")
    out = {}
    for name, jid in ids.items():
        doc = p.job(who[name[0]], jid)
        out[name] = outcome(doc["status"] == "running", int(doc["preemptions"]))
    for name, jid in ids.items():
        p.client.post(f"/v1/jobs/{jid}/cancel", headers=who[name[0]])
    return out


def test_quota_decisions_match_between_simulator_and_live_pool(tmp_path, pool):
    sim = simulated(tmp_path)
    assert sim == {"a1": "running", "a2": "preempted", "a3": "waiting", "b1": "running"}
    assert live(pool) == sim
