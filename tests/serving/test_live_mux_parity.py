"""The simulator and the live controller multiplex the same way for the same services file:
the same mux groups (members, flavor, instance tp) and the same memory budget per instance,
because both take them from ``muxplan.groups_of`` and ``mux.instance_bytes``. Plus the pieces
of the live path alone: the members' engines get their memory share, the emulator refuses a
share its weights do not fit, LRU eviction, and the services file's ``scale_to_zero``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from computepool.catalog.pools import load_pool
from computepool.serving.config import read_serving
from computepool.serving.controller import ServingController
from computepool.serving.emulator import replica_timing, with_memory_fraction
from computepool.serving.live_pool import ProcessReplicas
from computepool.serving.mux import lru_victims, member_bytes
from computepool.serving.supervisor import Replica
from computepool.traces.errors import TraceError

ROOT = Path(__file__).resolve().parents[2]
MUX = """
traffic: {rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 2, multiplex: true, keep_alive_s: 600, packing: false, hot_fraction: 0.005}
services:
  - {name: alpha, model: qwen2.5-3b, accelerators: [V100], share: 0.001}
  - {name: beta, model: qwen1.5-1.8b, accelerators: [V100], share: 0.001}
  - {name: gamma, model: llama-3.2-1b, accelerators: [V100], share: 0.001}
  - {name: busy, model: qwen2.5-0.5b, accelerators: [V100], share: 0.5}
  - {name: strict, model: qwen2.5-0.5b, accelerators: [V100], share: 0.001, slo: {ttft_p99_s: 1.5}}
"""


def _decisions(pool_name: str, path: str):
    pool = load_pool(pool_name)
    sw = read_serving(path)
    sim = ServingController(pool, sw)
    simulated = sorted(
        (tuple(sim.states[i].spec.name for i in g.members), int(g.shapes.flavor[0]),
         int(g.shapes.tp[0]), g.replay.mem_bytes)
        for g in sim.states if g.members
    )  # fmt: skip
    live = ProcessReplicas(pool, sw, None)
    try:
        lived = sorted(
            (tuple(live.states[i].spec.name for i in gp.members), gp.flavor, gp.tp, dev.budget)
            for gp, dev in zip(live.plans, live.groups, strict=True)
        )
        member = {s.spec.name: s.group is not None for s in live.states}
    finally:
        live.stop()
    return simulated, lived, member


def test_live_and_simulated_mux_groups_are_the_same(tmp_path):
    path = tmp_path / "mux.yaml"
    path.write_text(MUX)
    sim, live, member = _decisions("gavel-36x3", str(path))
    assert sim == live
    assert [m for m, *_ in live] == [("alpha", "beta", "gamma")]
    # a busy model keeps its own replicas; a lone cold one (no group partner) too
    assert member == {"alpha": True, "beta": True, "gamma": True, "busy": False, "strict": False}


def test_live_and_simulated_mux_groups_agree_on_the_long_tail_mix():
    sim, live, _ = _decisions("automotive-demo", str(ROOT / "examples/serving/long-tail.yaml"))
    assert sim == live
    assert sum(len(m) for m, *_ in live) >= 40  # most of the 60 models are multiplexed


def test_member_engines_start_with_their_memory_share(tmp_path):
    path = tmp_path / "mux.yaml"
    path.write_text(MUX)
    live = ProcessReplicas(load_pool("gavel-36x3"), read_serving(path), None)
    try:
        by = {s.spec.name: s for s in live.states}
        argv, _ = by["alpha"].supervisor.launch(Replica(8101, None, 0.0))
        i = argv.index("--gpu-memory-utilization")
        share = float(argv[i + 1])
        assert share == pytest.approx(member_bytes(6.18e9, 36864, live.cfg.perf) / 16e9, rel=1e-3)
        assert "--start-delay" in argv  # woken replicas load their weights over the host link
        argv, _ = by["busy"].supervisor.launch(Replica(8102, None, 0.0))
        assert "--gpu-memory-utilization" not in argv  # not sharing its device
    finally:
        live.stop()


def test_the_emulator_refuses_a_memory_share_its_weights_do_not_fit():
    t = replica_timing("qwen2.5-3b", "V100")
    capped = with_memory_fraction(t, 0.45, 16, 1)
    assert 0 < capped.kv_cap < t.kv_cap
    assert capped.kv_cap == pytest.approx((0.45 * 16e9 - 6.18e9) / 36864, rel=1e-3)
    with pytest.raises(ValueError, match="do not fit"):
        with_memory_fraction(t, 0.3, 16, 1)


def test_lru_victims_evicts_the_least_recently_used_idle_members_only():
    resident = [(6e9, 10.0, False), (7e9, 5.0, True), (3e9, 1.0, False), (2e9, 8.0, False)]
    assert lru_victims(resident, 1e9, 2e9) == []
    assert lru_victims(resident, 4e9, 0.5e9) == [2, 3]  # oldest idle first, until it fits
    assert lru_victims(resident, 11e9, 0.0) == [2, 3, 0]
    assert lru_victims(resident, 12e9, 0.0) is None  # the busy one stays: not enough
    assert np.isclose(sum(resident[i][0] for i in [2, 3, 0]), 11e9)


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("scale_to_zero: {idle_s: 0}", "services[0].scale_to_zero.idle_s"),
        ("scale_to_zero: {queue: 100000}", "services[0].scale_to_zero.queue"),
        ("scale_to_zero: {max_wait_s: -1}", "services[0].scale_to_zero.max_wait_s"),
        ("scale_to_zero: {idle: 5}", "services[0].scale_to_zero.idle"),
        ("scale_to_zero: yes", "services[0].scale_to_zero"),
    ],
)
def test_scale_to_zero_errors_name_file_line_and_field(tmp_path, entry, where):
    path = tmp_path / "s.yaml"
    path.write_text(f"services:\n  - name: a\n    model: qwen2.5-0.5b\n    {entry}\n")
    with pytest.raises(TraceError) as err:
        read_serving(path)
    assert f"s.yaml:4: field '{where}'" in str(err.value)


def test_scale_to_zero_is_read(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "services:\n  - {name: a, model: qwen2.5-0.5b, scale_to_zero: {idle_s: 30, queue: 8}}\n"
    )
    (svc,) = read_serving(path).services
    assert (svc.scale_to_zero.idle_s, svc.scale_to_zero.queue) == (30.0, 8)
    assert svc.scale_to_zero.max_wait_s == 60.0 and svc.scale_to_zero.per_tenant == 4


def _svc(min_replicas: int, idle_s: float = 60.0):
    from types import SimpleNamespace

    from computepool.serving.activity import ActivatorBounds

    spec = SimpleNamespace(name="a", min_replicas=min_replicas)
    return SimpleNamespace(spec=spec, bounds=ActivatorBounds(idle_s=idle_s), want=min_replicas,
                           asleep=min_replicas == 0, supervisor=SimpleNamespace(replicas=[]))  # fmt: skip


def test_scale_to_zero_targets():
    from computepool.serving.activity import ActivatorBounds, Activity
    from computepool.serving.live_mux import target

    act = Activity(["a"])
    s = _svc(0)
    assert target(s, act) == 0  # min_replicas 0: starts at zero
    assert act.hold("a", 7, ActivatorBounds()) == ""
    assert target(s, act) == 1  # a held request wakes it
    act.begin("a")
    act.unhold("a", 7)
    assert target(s, act) == 1  # served: stays up while in flight ...
    act.end("a")
    assert target(s, act) == 1  # ... and within its idle window, although min_replicas is 0
    s.bounds = ActivatorBounds(idle_s=1e-6)
    s.supervisor.replicas = [object()]
    assert target(s, act) == 0 and s.asleep
    assert act.snapshot("a").scaled_to_zero == 1
    s2 = _svc(2)
    assert not s2.asleep and target(s2, act) == 2  # the autoscaler's want while awake


def test_the_live_example_multiplexes_three_models_and_scales_one_to_zero():
    path = str(ROOT / "examples/serving/mux-live.yaml")
    sim, live, member = _decisions("gavel-36x3", path)
    assert sim == live and [m for m, *_ in live] == [("alpha", "beta", "gamma")]
    assert member == {"sleepy": False, "alpha": True, "beta": True, "gamma": True}
    (svc,) = [s for s in read_serving(path).services if s.name == "sleepy"]
    assert svc.scale_to_zero is not None and svc.scale_to_zero.idle_s == 60


BUSY_GROUP = """
traffic: {rate_scale: 3.0, duration_hours: 0.5, seed: 0, step: {at_s: 600, factor: 8}}
serving: {interval_s: 10, multiplex: true, keep_alive_s: 120, packing: false, hot_fraction: 1.0}
services:
  - {name: alpha, model: qwen2.5-3b, accelerators: [V100], share: 0.05}
  - {name: beta, model: qwen1.5-1.8b, accelerators: [V100], share: 0.05}
  - {name: gamma, model: llama-3.2-1b, accelerators: [V100], share: 0.05}
"""


def test_a_group_is_sized_on_its_total_load_as_the_simulator_sizes_it(tmp_path):
    """Same past load in, same instance count out: the live group's sizer, fed each round
    what the simulator's group state measured (total rate, backlog, mix, member activity),
    wants the instances the simulator's group holds after that round; and both start from
    the same warm start."""
    from types import SimpleNamespace

    from computepool.serving.controller import SimulatedReplicas

    path = tmp_path / "busy.yaml"
    path.write_text(BUSY_GROUP)
    pool, sw = load_pool("gavel-36x3"), read_serving(path)
    sim = SimulatedReplicas(pool, sw, batched=False)
    (g,) = [g for g in sim.states if g.members]
    seen = []
    decide = sim._decide

    def spy(s, now, rate, mix, cap, floor0):
        if s is g:
            seen.append((rate, mix, s.replay.backlog, s.replicas))
        return decide(s, now, rate, mix, cap, floor0)

    sim._decide = spy
    F = len(pool.flavors)
    ctx = SimpleNamespace(free=np.full(F, 1e9), freed=np.zeros(F), evict_for=lambda f, d: False)
    plans = sim.decide(0.0)
    sim.grow(plans, ctx, 0.0)
    live = ProcessReplicas(pool, sw, None)  # starts no process before a round
    (sz,) = live.sizers
    assert sz.instances == g.replicas  # the warm start
    sims, lives = [], []
    for t in np.arange(10.0, sw.horizon_s, 10.0):
        sim.advance(t)
        plans = sim.decide(t)
        sim.release(plans, t)
        ctx.free[:] = 1e9
        sim.grow(plans, ctx, t)
        rate, mix, backlog, before = seen[-1]
        dec, res = g.replay.masks(t)
        busy = g.replay.busy(t)
        lives.append(sz.decide(t, rate, backlog, mix, dec, res, busy, g.replay.mean_k(t), before))
        sims.append(g.replicas)
    assert lives == sims
    assert len(set(sims)) >= 2  # the load moved the count


def test_the_live_sizer_counts_the_copies_of_a_busy_members_weights(tmp_path):
    """A busy member holds its weights on each instance its prompts keep busy (the
    simulator's floor, merged from the disaggregation work): the live sizer reads the busy
    instances from the measured rates and its floor and decision count the copies."""
    from dataclasses import replace
    from types import SimpleNamespace

    from computepool.serving.activity import Activity
    from computepool.serving.live_mux import group_load
    from computepool.serving.mux import floor_instances
    from computepool.serving.perf import Mix

    path = tmp_path / "busy.yaml"
    path.write_text(BUSY_GROUP)
    live = ProcessReplicas(load_pool("gavel-36x3"), read_serving(path), None)
    live.stop()
    (sz,) = live.sizers
    f = float(sz.shape.flops[0])
    mix = Mix(prefill_flops=f / 10.0, output_tokens=50.0, context_tokens=500.0)
    names = ("alpha", "beta", "gamma")
    states = [
        SimpleNamespace(spec=SimpleNamespace(name=n),
                        autoscaler=SimpleNamespace(rate=[r], mix=mix, queued=0))
        for n, r in zip(names, (35.0, 1.0, 20.0), strict=True)
    ]  # fmt: skip
    act = Activity(list(names))
    act.begin("alpha")
    act.begin("beta")  # gamma has nothing in flight: not busy, no copies
    rate, backlog, mix, dec, res, busy, mean_k = group_load(states, act, sz)
    assert busy.tolist() == [4.0, 1.0, 0.0] and dec.tolist() == [True, True, False]
    # members whose weights need two instances: the busy one's copies raise the floor
    m = replace(sz.members, weight_bytes=np.array([0.55, 0.55, 0.55]) * sz.mem_bytes)
    perf = sz.cfg.perf
    none = np.zeros(3)
    assert floor_instances(m, dec, res, none, sz.mem_bytes, perf, sz.tbt_slo_s) == 2
    assert floor_instances(m, dec, res, busy, sz.mem_bytes, perf, sz.tbt_slo_s) == 3
    big = replace(sz, members=m, hist_t=[], hist_rate=[], hist_need=[])
    idle = replace(big, hist_t=[], hist_rate=[], hist_need=[])
    assert big.decide(0.0, 1e-3, 0.0, mix, dec, res, busy, mean_k, 1) == 3
    assert idle.decide(0.0, 1e-3, 0.0, mix, dec, res, none, mean_k, 1) == 2


def test_live_and_simulated_mux_groups_agree_with_groups_merged(tmp_path):
    # mux_merge: the 32B models' H800 x2 group joins the 70-72B models' x4 instances in
    # both (the live controller takes the simulator's plans, decided over the same past)
    text = (ROOT / "examples/serving/long-tail.yaml").read_text()
    text = text.replace("multiplex: true,", "multiplex: true, hot_fraction: 2, mux_merge: true,")
    path = tmp_path / "lt.yaml"
    path.write_text(text)
    assert read_serving(path, live=True).config.mux_merge
    sim, live, _ = _decisions("automotive-demo", str(path))
    assert sim == live
    tps = {tp: len(m) for m, _, tp, _ in live}
    assert tps.get(2) is None and tps[4] == 12  # 6 x 32B + 6 x 70-72B on x4 instances
