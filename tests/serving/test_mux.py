"""Multiplexed replica groups: rarely used models share instances, load on demand."""

import numpy as np
import pytest

from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.serving.mux import (
    busy_instances,
    cold_flags,
    host_link_gbs,
    load_seconds,
    replicated,
    weights_floor,
)
from computepool.serving.perf import PerfAssumptions
from computepool.serving.service import ServiceSpec
from computepool.sim.run import SimConfig, simulate
from tests.serving.helpers import model, one_node_pool, stream, workload

EMPTY = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])


def _run(pool, services):
    tp = Throughputs(pool.accelerators)
    return simulate(pool, EMPTY, tp, get_policy("las"), SimConfig(), services=services)


def test_a_model_is_cold_after_keep_alive_without_requests():
    t = np.array([0.0, 10.0, 20.0, 100.0, 101.0, 500.0])
    member = np.array([0, 1, 0, 0, 1, 1])
    # 0: first (cold), 20 s later (warm), 80 s later (cold); 1: first, 91 s later, 399 s later
    assert cold_flags(t, member, 60.0).tolist() == [True, True, False, True, True, True]
    assert cold_flags(t, member, 1000.0).tolist() == [True, True, False, False, False, False]


def test_load_time_is_weight_bytes_over_the_catalogued_host_link():
    perf = PerfAssumptions()
    w = 144.6e9  # qwen2.5-72b in bf16
    assert host_link_gbs("H800") == 64 and host_link_gbs("no-such-card") == 32
    got = load_seconds(w, "H800", 4, perf)
    assert got == pytest.approx(perf.switch_s + w / (4 * 64e9 * perf.h2d_efficiency))
    slow = load_seconds(w, "H800", 4, PerfAssumptions(host_cached=0.0, storage_gbs=6.0))
    assert slow == pytest.approx(perf.switch_s + w / 6e9)


def _rare(n: int, horizon: float = 1800.0, rate: float = 0.05):
    svcs = [ServiceSpec(f"m{i}", model("qwen2.5-7b"), max_replicas=4) for i in range(n)]
    streams = [stream(np.full(int(horizon), rate), seed=10 + i) for i in range(n)]
    past = [stream(np.full(int(horizon), rate), seed=100 + i) for i in range(n)]
    return svcs, streams, past


def test_rarely_used_models_share_a_group_and_hold_fewer_accelerators():
    pool = one_node_pool(per_node=8, nodes=2)
    svcs, streams, past = _rare(6)
    alone = _run(pool, workload(svcs, streams, 1800.0, past=past, packing=False))
    mux = _run(pool, workload(svcs, streams, 1800.0, past=past, packing=False, multiplex=True))
    rows = {r["name"]: r for r in mux.extra["services"]}
    groups = [r for r in rows.values() if r["status"] == "group"]
    assert len(groups) == 1 and sorted(groups[0]["members"]) == [f"m{i}" for i in range(6)]
    assert all(rows[f"m{i}"]["served_by"] == groups[0]["name"] for i in range(6))
    a, m = alone.extra["serving"], mux.extra["serving"]
    assert m["accelerator_hours"] < 0.5 * a["accelerator_hours"]
    assert m["slo_attainment_min_service"] >= 0.99
    # members are charged the group's hours between them
    charged = sum(rows[f"m{i}"]["accelerator_hours"] for i in range(6))
    assert charged == pytest.approx(groups[0]["accelerator_hours"], rel=1e-6)


def test_a_cold_request_waits_for_its_weights():
    pool = one_node_pool(per_node=8, nodes=1)
    svcs, streams, past = _rare(2, rate=0.01)
    res = _run(pool, workload(svcs, streams, 1800.0, past=past, packing=False, multiplex=True))
    ctl = res.serving
    g = next(s for s in ctl.states if s.members)
    cold = g.replay.cold
    assert cold.any() and (~cold).any()
    load = load_seconds(model("qwen2.5-7b").weight_bytes, "G", 1, ctl.cfg.perf)
    assert (g.replay.ttft[cold] >= load).all()
    assert np.median(g.replay.ttft[~cold]) < load


def test_hot_models_keep_their_own_replicas():
    pool = one_node_pool(per_node=8, nodes=2)
    svcs, streams, past = _rare(3)
    hot = ServiceSpec("hot", model("qwen2.5-7b"), max_replicas=8)
    busy = stream(np.full(1800, 20.0), seed=1)
    sw = workload(
        [hot, *svcs], [busy, *streams], 1800.0, past=[busy, *past], packing=False,
        multiplex=True,
    )  # fmt: skip
    rows = {r["name"]: r for r in _run(pool, sw).extra["services"]}
    assert "served_by" not in rows["hot"] and rows["hot"]["replicas_max"] >= 1
    assert all(rows[f"m{i}"].get("served_by") for i in range(3))


def test_a_group_adds_instances_when_its_resident_weights_outgrow_one():
    pool = one_node_pool(per_node=8, nodes=2)
    svcs = [ServiceSpec(f"big{i}", model("qwen2.5-32b"), max_replicas=4) for i in range(2)]
    streams = [stream(np.full(1200, 0.1), seed=20 + i) for i in range(2)]
    past = [stream(np.full(1200, 0.1), seed=30 + i) for i in range(2)]
    res = _run(pool, workload(svcs, streams, 1200.0, past=past, packing=False, multiplex=True))
    ctl = res.serving
    g = next(s for s in ctl.states if s.members)
    k = ctl.states.index(g)
    mem = g.replay.mem_bytes
    both = 2 * model("qwen2.5-32b").weight_bytes
    assert mem < both / 0.8  # one instance cannot hold both with a fifth left for KV
    assert g.replay.floor_replicas(600.0) == 2
    assert np.asarray(ctl.record.replicas)[:, k].max() >= 2
    assert res.extra["serving"]["slo_attainment_min_service"] >= 0.99


def test_a_busy_member_holds_a_copy_of_its_weights_on_each_instance_its_prompts_keep_busy():
    pool = one_node_pool(per_node=8, nodes=2)
    svcs = [ServiceSpec(f"m{i}", model("qwen2.5-7b"), max_replicas=8) for i in range(3)]
    streams = [
        stream(np.full(900, r), prompt=4000, seed=40 + i) for i, r in enumerate((20, 0.1, 0.1))
    ]
    res = _run(
        pool,
        workload(svcs, streams, 900.0, packing=False, multiplex=True, hot_fraction=100.0),
    )
    g = next(s for s in res.serving.states if s.members)
    r, m = g.replay, g.replay.members
    f = float(r.shapes.flops[0])
    work = r.member_work(np.array([600.0]), r.decode_window_s)[:, 0]
    busy = int(np.ceil(work[0] / (f * r.decode_window_s)))
    assert busy >= 2  # the busy member's prompts keep several instances busy
    k = r.busy(600.0)
    assert k[0] == busy and np.array_equal(k, busy_instances(work, f, r.decode_window_s))
    extra = replicated(m, k, np.array([8.0]))[0]
    assert extra == pytest.approx((min(busy, 8) - 1) * m.weight_bytes[0])
    # the floor: the fewest instances that hold every model once plus the busy one's copies
    w = float(m.weight_bytes.sum())
    n = weights_floor(w, m, k, r.mem_bytes)

    def fits(j):
        return w + replicated(m, k, np.array([float(j)]))[0] <= 0.8 * r.mem_bytes * j

    assert fits(n) and (n == 1 or not fits(n - 1))
    assert replicated(m, k, np.array([1.0]))[0] == 0.0


def test_a_histogram_keep_alive_evicts_sooner_and_lowers_the_weights_floor():
    """Per-model keep-alive from the members' past idle times (keepalive.py): never longer
    than the fixed 60 s here, so the memory floor is never higher and at some moments lower,
    and more requests find their model evicted."""
    pool = one_node_pool(per_node=8, nodes=2)
    svcs = [ServiceSpec(f"big{i}", model("qwen2.5-32b"), max_replicas=4) for i in range(2)]
    streams = [stream(np.full(1200, 0.1), seed=20 + i) for i in range(2)]
    past = [stream(np.full(1200, 0.1), seed=30 + i) for i in range(2)]
    runs = [
        _run(
            pool,
            workload(
                svcs,
                streams,
                1200.0,
                past=past,
                packing=False,
                multiplex=True,
                keep_alive_policy=p,
                keep_alive_quantile=0.9,
            ),
        )  # fmt: skip
        for p in ("fixed", "histogram")
    ]
    g = [next(s for s in r.serving.states if s.members).replay for r in runs]
    assert g[0].keep_alive is None and (g[1].keep_alive.ka < 60.0).all()
    ts = np.arange(30.0, 1200.0, 5.0)
    floors = np.array([[x.floor_replicas(t) for t in ts] for x in g])
    assert (floors[1] <= floors[0]).all() and (floors[1] < floors[0]).any()
    assert g[1].cold.sum() > g[0].cold.sum()
