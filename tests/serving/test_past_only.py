"""Decisions look at the past only: a spike later in the run moves nothing before it."""

import numpy as np
import pytest

from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.serving.perf import PerfAssumptions
from computepool.serving.service import ServiceSpec
from computepool.serving.streams import RequestStream
from computepool.sim.run import SimConfig, simulate
from tests.serving.helpers import gpu, model, one_node_pool, stream, workload

EMPTY = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])
SPIKE_AT = 900.0


def _run(pool, services):
    tp = Throughputs(pool.accelerators)
    return simulate(pool, EMPTY, tp, get_policy("las"), SimConfig(), services=services)


def _with_spike(base: RequestStream, at: float, extra: RequestStream) -> RequestStream:
    """``base`` plus ``extra`` shifted to start at ``at`` (long prompts: a burst of work)."""
    t = np.r_[base.t, extra.t + at]
    order = np.argsort(t, kind="stable")
    return RequestStream(
        t[order], np.r_[base.prompt, extra.prompt][order], np.r_[base.output, extra.output][order]
    )


@pytest.mark.parametrize("at", [SPIKE_AT, 60.0])
@pytest.mark.parametrize("mode", ["pooled", "dedicated"])
def test_a_future_spike_moves_no_decision_before_it(mode, at):
    pool = one_node_pool(per_node=8, nodes=2)
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=16)
    calm = stream(np.full(1800, 1.0), seed=1)
    spiky = _with_spike(calm, at, stream(np.full(120, 40.0), prompt=4000, seed=2))
    yesterday = stream(np.full(1800, 1.0), seed=3)
    runs = [
        _run(pool, workload([svc], [s], 1800.0, past=[yesterday], mode=mode)) for s in (calm, spiky)
    ]
    recs = [r.serving.record for r in runs]
    t = np.asarray(recs[0].t)
    assert np.array_equal(t, np.asarray(recs[1].t))
    before = t < at
    assert before.sum() >= 2
    for key in ("replicas", "devices", "need"):
        a, b = (np.asarray(getattr(r, key))[before] for r in recs)
        assert np.array_equal(a, b), key
    # the spike itself is seen once it arrives (pooled scales up; dedicated cannot)
    after = [np.asarray(r.replicas)[~before].max() for r in recs]
    if mode == "pooled":
        assert after[1] > after[0]
    else:
        assert after[1] == after[0]


def test_dedicated_is_sized_from_the_previous_period_not_from_this_run():
    pool = one_node_pool(per_node=8, nodes=2)
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=16)
    today = _with_spike(stream(np.full(1800, 1.0)), SPIKE_AT, stream(np.full(120, 40.0)))
    quiet = stream(np.full(1800, 1.0), seed=3)
    busy = stream(np.full(1800, 30.0), seed=3)
    reps = [
        np.asarray(
            _run(
                pool, workload([svc], [today], 1800.0, past=[p], mode="dedicated")
            ).serving.record.replicas
        )[0, 0]
        for p in (quiet, busy)
    ]
    assert reps[1] > reps[0]


def _sim_first_shape(pool, w) -> str:
    """The shape the simulator's pre-warmed start gives the service (first round)."""
    from types import SimpleNamespace

    from computepool.serving.controller import SimulatedReplicas

    sim = SimulatedReplicas(pool, w, batched=False)
    plans = sim.decide(0.0)
    F = len(pool.flavors)
    ctx = SimpleNamespace(free=np.full(F, 1e9), freed=np.zeros(F), evict_for=lambda f, d: False)
    sim.grow(plans, ctx, 0.0)
    (s,) = sim.states
    return s.shapes.names[s.groups[0].shape]


def test_the_live_replica_shape_comes_from_the_previous_period_as_the_simulators():
    from computepool.serving.live_pool import ProcessReplicas

    pool = one_node_pool(per_node=8, nodes=2, accel=gpu("H800"))
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=16)
    calm = stream(np.full(1800, 0.2), seed=1)
    spiky = _with_spike(calm, 60.0, stream(np.full(600, 60.0), prompt=8000, seed=2))
    chosen = {}
    for name, past in (("quiet", stream(np.full(1800, 0.2), seed=3)),
                       ("busy", stream(np.full(1800, 60.0), prompt=8000, seed=3))):  # fmt: skip
        for today_name, today in (("calm", calm), ("spiky", spiky)):
            w = workload([svc], [today], 1800.0, past=[past])
            live = ProcessReplicas(pool, w)
            try:
                chosen[name, today_name] = live.states[0].shape
            finally:
                live.stop()
            assert chosen[name, today_name] == _sim_first_shape(pool, w)
        # today's traffic (a spike the controller has not seen yet) changes nothing
        assert chosen[name, "calm"] == chosen[name, "spiky"]
    assert chosen["quiet", "calm"] != chosen["busy", "calm"]  # the past does


@pytest.mark.parametrize(
    "cfg,prefix",
    [
        ({"disaggregate": True}, "prefill/"),
        ({"multiplex": True, "hot_fraction": 100.0, "burst_sizing": "replay"}, "mux/"),
        (
            {
                "multiplex": True,
                "hot_fraction": 100.0,
                "burst_sizing": "replay",
                "keep_alive_policy": "histogram",
                "keep_alive_epoch_s": 300.0,
                "keep_alive_min_samples": 5,
            },
            "mux/",
        ),
        (
            {
                "multiplex": True,
                "hot_fraction": 100.0,
                "burst_sizing": "replay",
                "sizing_history_s": 3600.0,
                "sizing_history_quantile": 0.5,
            },
            "mux/",
        ),
        (
            {
                "multiplex": True,
                "hot_fraction": 100.0,
                "burst_sizing": "replay",
                "residency": "swap",
                "perf": PerfAssumptions(memory_usable=0.2),  # decoding weights overflow: swaps
            },
            "mux/",
        ),
    ],
)
def test_a_future_spike_moves_no_pool_or_group_decision_before_it(cfg, prefix):
    """A prefill pool and its decode sides, and a mux group sized by replaying its past
    prompts (sizing.py), decide from arrived prompts only."""
    pool = one_node_pool(per_node=8, nodes=2)
    svcs = [ServiceSpec(n, model("qwen2.5-7b"), max_replicas=16) for n in ("chat", "rag")]
    calm = [stream(np.full(1800, 1.0), seed=1), stream(np.full(1800, 0.5), seed=4)]
    spiky = [_with_spike(calm[0], SPIKE_AT, stream(np.full(120, 40.0), prompt=4000, seed=2))]
    yesterday = [stream(np.full(1800, 1.0), seed=3), stream(np.full(1800, 0.5), seed=5)]
    runs = [
        _run(pool, workload(svcs, s, 1800.0, past=yesterday, **cfg))
        for s in (calm, spiky + calm[1:])
    ]
    names = [s.spec.name for s in runs[0].serving.states]
    assert any(n.startswith(prefix) for n in names)
    recs = [r.serving.record for r in runs]
    t = np.asarray(recs[0].t)
    before = t < SPIKE_AT
    for key in ("replicas", "devices", "need"):
        a, b = (np.asarray(getattr(r, key))[before] for r in recs)
        assert np.array_equal(a, b), key
    k = names.index(next(n for n in names if n.startswith(prefix)))
    after = [np.asarray(r.replicas)[~before, k].max() for r in recs]
    assert after[1] > after[0]  # it grows once the spike's prompts arrive
