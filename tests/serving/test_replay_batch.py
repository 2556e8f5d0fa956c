"""The batched replay (all services per round at once) gives what one replay per service does."""

import numpy as np
import pytest

from computepool.model.job import Job
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.serving.controller import ServingController
from computepool.serving.service import ServiceSpec
from computepool.sim.run import SimConfig, simulate
from tests.serving.helpers import model, one_node_pool, stream, workload


def _services():
    step = np.r_[np.full(400, 0.5), np.full(500, 25.0), np.full(300, 2.0)]
    svcs = [
        ServiceSpec("a", model("qwen2.5-7b"), max_replicas=6),
        ServiceSpec("b", model("qwen2.5-14b"), max_replicas=3),  # capped: a queue builds
        ServiceSpec("c", model("qwen2.5-1.5b"), max_replicas=4, min_replicas=0),
        ServiceSpec("idle", model("qwen2.5-3b"), max_replicas=2),
    ]
    streams = [
        stream(step, seed=1),
        stream(np.r_[np.full(600, 1.0), np.full(600, 30.0)], prompt=3000, seed=2),
        stream(np.full(1200, 3.0), output=400, seed=3),
        stream(np.zeros(1200), seed=4),
    ]
    past = [stream(np.full(1200, 0.5), seed=10 + i) for i in range(4)]
    return svcs, streams, past


@pytest.mark.parametrize("packing,disaggregate", [(True, False), (False, False), (True, True)])
def test_batched_and_per_service_replays_agree(monkeypatch, packing, disaggregate):
    pool = one_node_pool(per_node=8, nodes=1)
    svcs, streams, past = _services()
    sw = workload(
        svcs, streams, 1200.0, past=past, packing=packing, grace_s=30.0, disaggregate=disaggregate
    )
    jobs = Workload.from_jobs([Job(id="spot", workers=4, total_steps=4 * 7200.0)])
    tp = Throughputs(pool.accelerators)
    runs = []
    for batched in (True, False):
        monkeypatch.setattr(
            "computepool.serving.controller.ServingController",
            lambda *a, b=batched, **k: ServingController(*a, batched=b, **k),
        )
        runs.append(simulate(pool, jobs, tp, get_policy("las"), SimConfig(), services=sw))
    new, old = (r.serving for r in runs)
    assert new._batch is not None and old._batch is None
    for a, b in zip(new.states, old.states, strict=True):
        assert np.isnan(a.replay.ttft).sum() == 0
        np.testing.assert_allclose(a.replay.ttft, b.replay.ttft, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a.replay.tbt, b.replay.tbt, rtol=1e-9, atol=1e-12)
    for key in ("replicas", "devices", "need"):
        np.testing.assert_array_equal(
            np.asarray(getattr(new.record, key)), np.asarray(getattr(old.record, key))
        )
    assert runs[0].extra["serving"] == runs[1].extra["serving"]
    # the case exercises queues, misses and an idle service
    ttft = np.concatenate([s.replay.ttft for s in new.states])
    assert (ttft > 2.0).any() and (ttft <= 2.0).any()
    pools = [s for s in new.states if s.prefill_for]
    assert len(pools) == (1 if disaggregate else 0)
