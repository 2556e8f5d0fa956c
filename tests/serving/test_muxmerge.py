"""``serving.mux_merge``: a mux group of smaller instances joins a larger-instance group of the
same flavor when the larger one's instances, sized over the previous period, leave room for
its members' weights (``serving/muxmerge.py``)."""

from __future__ import annotations

import sys

import numpy as np

from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.serving.muxmerge import merge_plans
from computepool.serving.muxplan import GroupPlan
from computepool.serving.service import ServiceSpec
from computepool.sim.run import SimConfig, simulate
from tests.serving.helpers import model, one_node_pool, stream, workload

EMPTY = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])
H = 1800


def _bursty(seed: int, peak: float):
    """Long prompts at 0.05 req/s with a burst of ``peak`` req/s one second a minute."""
    r = np.full(H, 0.05)
    r[::60] = peak
    return stream(r, prompt=4000, output=20, seed=seed)


def _services(peak_now: float, peak_past: float):
    """Two 72B models (4-device instances) with bursts of prompts, two rarely used 32B
    models (2-device instances), two rarely used 7B models (1-device instances)."""
    svcs = [ServiceSpec(f"big{i}", model("qwen2.5-72b"), max_replicas=8) for i in range(2)]
    svcs += [ServiceSpec(f"mid{i}", model("qwen2.5-32b"), max_replicas=4) for i in range(2)]
    svcs += [ServiceSpec(f"small{i}", model("qwen2.5-7b"), max_replicas=4) for i in range(2)]
    now = [_bursty(1, peak_now), _bursty(2, peak_now)]
    now += [stream(np.full(H, 0.05), seed=s) for s in (3, 4, 5, 6)]
    past = [_bursty(11, peak_past), _bursty(12, peak_past)]
    past += [stream(np.full(H, 0.05), seed=s) for s in (13, 14, 15, 16)]
    return svcs, now, past


def _run(peak_now: float, peak_past: float, merge: bool):
    pool = one_node_pool(per_node=8, nodes=8)
    svcs, now, past = _services(peak_now, peak_past)
    sw = workload(svcs, now, float(H), past=past, packing=False, multiplex=True,
                  hot_fraction=2.0, burst_sizing="replay", mux_merge=merge)  # fmt: skip
    res = simulate(pool, EMPTY, Throughputs(pool.accelerators), get_policy("las"), SimConfig(),
                   services=sw)  # fmt: skip
    groups = {r["name"]: sorted(r["members"]) for r in res.extra["services"]
              if r["status"] == "group"}  # fmt: skip
    return res.extra["serving"], groups


APART = {
    "mux/r1/G x4": ["big0", "big1"],
    "mux/r1/G x2": ["mid0", "mid1"],
    "mux/r1/G x1": ["small0", "small1"],
}
MERGED = {"mux/r1/G x4": ["big0", "big1", "mid0", "mid1"], "mux/r1/G x1": ["small0", "small1"]}


def test_a_smaller_instance_group_joins_a_larger_one_when_that_holds_fewer_devices():
    apart, g0 = _run(8.0, 8.0, merge=False)
    merged, g1 = _run(8.0, 8.0, merge=True)
    assert g0 == APART
    # the 32B models' weights sit in memory the bursts' instances had anyway; the 7B ones
    # would run on 4 devices each step (two tp steps up): they keep their group
    assert g1 == MERGED
    assert merged["accelerator_hours"] < 0.9 * apart["accelerator_hours"]
    assert merged["slo_attainment_min_service"] >= 0.99


def _three_big(peak_now: float, peak_past: float):
    """Three 72B models (their weights fill two 4-device instances: with bursts they hold
    more, quiet they do not) and two rarely used 32B models."""
    svcs = [ServiceSpec(f"big{i}", model("qwen2.5-72b"), max_replicas=8) for i in range(3)]
    svcs += [ServiceSpec(f"mid{i}", model("qwen2.5-32b"), max_replicas=4) for i in range(2)]
    now = [_bursty(1 + i, peak_now) for i in range(3)]
    now += [stream(np.full(H, 0.05), seed=s) for s in (5, 6)]
    past = [_bursty(11 + i, peak_past) for i in range(3)]
    past += [stream(np.full(H, 0.05), seed=s) for s in (15, 16)]
    return svcs, now, past


def test_the_merge_is_decided_from_the_previous_period_only(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "_services", _three_big)
    big = ["big0", "big1", "big2"]
    # bursts in the past: merged, whatever the run brings; a quiet past: apart (together
    # they would need a third 4-device instance), even when the run's bursts would make room
    _, quiet_now = _run(0.05, 8.0, merge=True)
    assert quiet_now == {"mux/r1/G x4": [*big, "mid0", "mid1"]}
    _, busy_now = _run(8.0, 0.05, merge=True)
    assert busy_now == {"mux/r1/G x4": big, "mux/r1/G x2": ["mid0", "mid1"]}


def _plan(tp: int, members: tuple[int, ...], ttft: float = 2.0) -> GroupPlan:
    return GroupPlan(0, tp, ttft, 0.1, members, tuple(100 + i for i in members))


def test_merge_plans_folds_a_group_into_the_next_larger_one_when_that_holds_fewer_devices():
    held = {(0, 1): 16.0, (2, 3): 8.0, (0, 1, 2, 3): 20.0, (4, 5): 4.0, (6, 7): 4.0,
            (0, 1, 2, 3, 4, 5): 1.0}  # fmt: skip
    asked = []

    def devices(gp: GroupPlan) -> float:
        asked.append(gp.members)
        return held[gp.members]

    plans = [_plan(1, (4, 5)), _plan(4, (0, 1)), _plan(2, (2, 3)), _plan(4, (6, 7), ttft=1.0)]
    out = merge_plans(plans, lambda i, f, tp: 10 * tp + i, devices)
    by = {p.members: p for p in out}
    # 2-device group: 20 < 16 + 8, joins; 1-device group: two tp steps below, stays alone
    # (however cheap the estimate); other SLOs never merge
    assert set(by) == {(0, 1, 2, 3), (4, 5), (6, 7)}
    assert by[(0, 1, 2, 3)].tp == 4 and by[(0, 1, 2, 3)].rows == (100, 101, 42, 43)
    assert (0, 1, 2, 3, 4, 5) not in asked


def test_merge_plans_keeps_groups_apart_when_together_they_hold_as_many_devices():
    plans = [_plan(4, (0, 1)), _plan(2, (2, 3))]
    held = {(0, 1): 16.0, (2, 3): 8.0, (0, 1, 2, 3): 24.0}
    out = merge_plans(plans, lambda i, f, tp: i, lambda gp: held[gp.members])
    assert sorted(p.members for p in out) == [(0, 1), (2, 3)]


def test_merge_plans_leaves_a_group_alone_when_a_member_has_no_shape_there():
    plans = [_plan(4, (0, 1)), _plan(2, (2, 3))]
    out = merge_plans(plans, lambda i, f, tp: None if i == 3 else i, lambda gp: 1.0)
    assert sorted(p.members for p in out) == [(0, 1), (2, 3)]


def test_a_group_that_stays_apart_may_take_in_the_next_smaller_one():
    held = {(0, 1): 8.0, (2, 3): 4.0, (0, 1, 2, 3): 12.0, (4, 5): 2.0, (2, 3, 4, 5): 4.0}
    plans = [_plan(4, (0, 1)), _plan(2, (2, 3)), _plan(1, (4, 5))]
    out = merge_plans(plans, lambda i, f, tp: i, lambda gp: held[gp.members])
    assert sorted(p.members for p in out) == [(0, 1), (2, 3, 4, 5)]
    assert {p.members: p.tp for p in out}[(2, 3, 4, 5)] == 2
