"""Placement decides the same in the simulator and the live pool: the same job file on the same
pool (gavel-36x3: 9 nodes x 4 of each of V100, P100, K80), the same placement profile
(``bestfit``, ``fgd``) and policy, one job per round. Each job's workers must land on the same
nodes and device slots in both."""

from __future__ import annotations

import textwrap

import pytest

from computepool.policies import get_policy
from computepool.sim.run import SimConfig, simulate
from computepool.sim.runner import load_inputs
from tests.server.conftest import LivePool, sqlite_live

JOBS = """
defaults: {job_type: generic, accelerator_types: [V100], reference_accelerator: V100, duration_hours: 2}
jobs:
  - {id: p1, accelerators_per_worker: 3}
  - {id: p2, accelerators_per_worker: 2, arrival: 60}
  - {id: p3, accelerators_per_worker: 1, arrival: 120}
  - {id: p4, workers: 2, accelerators_per_worker: 4, arrival: 180}
  - {id: p5, accelerators_per_worker: 2, arrival: 240}
  - {id: p6, accelerators_per_worker: 1, arrival: 300}
"""
SHAPES = {"p1": (1, 3), "p2": (1, 2), "p3": (1, 1), "p4": (2, 4), "p5": (1, 2), "p6": (1, 1)}
Where = tuple[tuple[str, tuple[int, ...]], ...]


def simulated(tmp_path, profile: str = "bestfit") -> dict[str, Where]:
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent(JOBS))
    inp = load_inputs("gavel-36x3", str(path))
    names = [n.name for n in inp.pool.nodes]
    seen: dict[str, Where] = {}

    def record(s) -> None:
        for j, g in s.placer._held.items():
            jid = inp.workload.ids[j]
            seen.setdefault(jid, tuple((names[b.node], tuple(b.devices)) for b in g.bindings))

    cfg = SimConfig(round_seconds=60.0, placement=profile, until=400.0)
    simulate(
        inp.pool, inp.workload, inp.throughputs, get_policy("fifo-sticky"), cfg, on_round=record
    )
    return seen


def live(p: LivePool) -> dict[str, Where]:
    who = p.tenant("acme")
    out: dict[str, Where] = {}
    for name, (workers, per) in SHAPES.items():
        spec = {"workers": workers, "accelerators_per_worker": per, "accelerator_types": ["V100"]}
        jid = p.submit(who, name=name, command="sleep 60", **spec).json()["id"]
        doc = p.wait_status(who, jid, "running")
        (alloc,) = doc["allocations"]
        out[name] = tuple((node, tuple(dev)) for node, dev in alloc["workers"])
    for job in p.client.get("/v1/jobs", headers=who).json()["jobs"]:
        p.client.post(f"/v1/jobs/{job['id']}/cancel", headers=who)
    return out


@pytest.mark.parametrize("profile", ["bestfit", "fgd"])
def test_placement_decisions_match_between_simulator_and_live_pool(tmp_path, profile):
    sim = simulated(tmp_path, profile)
    assert set(sim) == set(SHAPES)
    assert [len(sim[j]) for j in SHAPES] == [w for w, _ in SHAPES.values()]
    with sqlite_live(tmp_path, policy="fifo-sticky", placement=profile) as p:
        assert live(p) == sim
