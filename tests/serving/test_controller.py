"""The serving layer inside the Scheduler round: bounds, preemption, rejections, dedicated."""

import numpy as np
import pytest

from computepool.model.job import Job
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.policies import get_policy
from computepool.serving.models import ModelSpec
from computepool.serving.service import ServiceSpec
from computepool.sim.run import SimConfig, simulate
from tests.serving.helpers import model, one_node_pool, stream, workload

EMPTY = Workload(np.zeros(0), np.zeros(0), np.zeros(0), [])


def _run(pool, services, jobs=EMPTY, policy="las"):
    tp = Throughputs(pool.accelerators)
    return simulate(pool, jobs, tp, get_policy(policy), SimConfig(), services=services)


def test_replicas_never_exceed_max_even_when_the_load_wants_more():
    pool = one_node_pool(per_node=1, nodes=16)  # single-device nodes: no bigger TP shapes
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=3)
    rate = np.r_[np.full(300, 2.0), np.full(900, 200.0)]  # far beyond 3 replicas
    res = _run(pool, workload([svc], [stream(rate)], 1200.0, packing=False))
    reps = np.array(res.serving.record.replicas)[:, 0]
    assert reps.max() == 3
    row = res.extra["services"][0]
    assert row["replicas_max"] <= row["max_replicas"] == 3
    assert row["rounds_capped"] > 0
    assert row["slo_attainment"] < 0.9  # honest: capped capacity misses the SLO


def _jobs(duration_s: float) -> Workload:
    return Workload.from_jobs(
        [
            Job(id="prod", workers=8, total_steps=8 * duration_s, preemptible=False),
            Job(id="spot", workers=4, total_steps=4 * duration_s, preemptible=True),
        ]
    )


def test_scale_up_preempts_only_preemptible_jobs_and_they_finish_from_their_checkpoint():
    pool = one_node_pool(per_node=8, nodes=2)  # 16 accelerators
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=10)
    rate = np.r_[np.full(600, 0.5), np.full(1200, 120.0)]  # x240 step at 10 min
    quiet = stream(np.full(1800, 0.5), seed=1)  # the previous period saw no step
    sw = workload([svc], [stream(rate)], 1800.0, past=[quiet], packing=False, grace_s=30.0)
    res = _run(pool, sw, _jobs(3 * 3600.0))
    prod, spot = 0, 1
    assert res.preemptions[prod] == 0
    assert res.preemptions[spot] >= 1
    assert res.extra["serving"]["preemptions_for_services"] >= 1
    reps = np.array(res.serving.record.replicas)[:, 0]
    assert reps.max() > 4  # it needed the spot job's accelerators
    # nothing lost: both finish, and the spot job received exactly its work
    assert np.isfinite(res.end).all()
    assert res.accel_seconds[spot] == pytest.approx(4 * 3 * 3600.0, rel=1e-6)
    assert res.end[spot] > res.end[prod]  # it waited while the service held its cards


def test_preempted_replica_starts_only_after_the_grace_period():
    pool = one_node_pool(per_node=8, nodes=1)
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=8)
    rate = np.r_[np.full(600, 0.5), np.full(600, 120.0)]
    jobs = Workload.from_jobs([Job(id="spot", workers=7, total_steps=7 * 7200.0)])
    quiet = stream(np.full(1200, 0.5), seed=1)  # the previous period saw no step
    sw = workload([svc], [stream(rate)], 1200.0, past=[quiet], packing=False, grace_s=45.0)
    res = _run(pool, sw, jobs)
    st = res.serving.states[0]
    starts = [g.ready_at for g in st.groups]  # groups are closed at the horizon
    assert starts == []
    # the second replica can only be ready grace + load time after the step was seen
    rec_t = np.array(res.serving.record.t)
    reps = np.array(res.serving.record.replicas)[:, 0]
    first_up = rec_t[np.argmax(reps > 1)]
    assert first_up >= 600.0
    assert res.preemptions[0] >= 1


def test_impossible_services_are_rejected_with_the_reason():
    pool = one_node_pool(per_node=8)
    huge = ModelSpec("huge", params_b=2000, layers=120, hidden=16384, heads=128, kv_heads=8)
    too_fast = ServiceSpec("fast", model("qwen2.5-72b"), tbt_slo_s=0.002)
    services = [
        ServiceSpec("big", huge),
        too_fast,
        ServiceSpec("ok", model("qwen2.5-1.5b")),
        ServiceSpec("nowhere", model("qwen2.5-7b"), accelerators=("Ascend910B",)),
    ]
    streams = [stream(np.full(60, 1.0), seed=i) for i in range(4)]
    res = _run(pool, workload(services, streams, 60.0))
    rows = {r["name"]: r for r in res.extra["services"]}
    assert rows["big"]["status"] == "rejected"
    assert "4,000 GB of weights" in rows["big"]["reason"]
    assert "largest replica" in rows["big"]["reason"]
    assert "TBT p99 SLO 2 ms cannot be met" in rows["fast"]["reason"]
    assert "has no Ascend910B" in rows["nowhere"]["reason"]
    assert rows["ok"]["status"] == "ok" and rows["ok"]["slo_attainment"] > 0.99
    assert res.extra["serving"]["services_rejected"] == ["big", "fast", "nowhere"]


def test_ttft_slo_that_no_flavor_can_meet_is_rejected():
    pool = one_node_pool(per_node=1)  # no tensor parallelism to speed prefill up
    svc = ServiceSpec("slow-prefill", model("qwen2.5-32b"), ttft_slo_s=0.05)
    res = _run(pool, workload([svc], [stream(np.full(60, 1.0), prompt=8000)], 60.0))
    reason = res.extra["services"][0]["reason"]
    assert "TTFT p99 SLO 0.05 s cannot be met" in reason and "8,000 tokens" in reason


def test_dedicated_holds_its_peak_sizing_for_the_whole_run():
    pool = one_node_pool(per_node=8, nodes=2)
    svc = ServiceSpec("chat", model("qwen2.5-7b"), max_replicas=8)
    rate = np.r_[np.full(1200, 1.0), np.full(300, 40.0), np.full(1200, 1.0)]
    pooled = _run(pool, workload([svc], [stream(rate)], 2700.0))
    dedicated = _run(pool, workload([svc], [stream(rate)], 2700.0, mode="dedicated"))
    reps = np.array(dedicated.serving.record.replicas)[:-1, 0]
    assert len(set(reps.tolist())) == 1 and reps[0] > 1
    p, d = pooled.extra["serving"], dedicated.extra["serving"]
    assert p["accelerator_hours"] < d["accelerator_hours"]
    assert d["slo_attainment"] >= 0.99


def test_services_held_accelerators_count_in_utilisation():
    pool = one_node_pool(per_node=8)
    svc = ServiceSpec("chat", model("qwen2.5-7b"), min_replicas=2, max_replicas=2)
    res = _run(pool, workload([svc], [stream(np.full(600, 0.2))], 600.0, packing=False))
    _, overall = res.utilization()
    assert overall == pytest.approx(2 / 8, rel=0.05)
    assert res.extra["serving"]["pool_utilization"] == pytest.approx(2 / 8, rel=0.05)


def test_non_preemptible_jobs_keep_running_when_las_would_swap_them_out():
    pool = one_node_pool(per_node=8)
    jobs = Workload.from_jobs(
        [
            Job(id="prod", workers=8, total_steps=8 * 7200.0, preemptible=False),
            Job(id="new", workers=8, total_steps=8 * 600.0, arrival=1800.0),
        ]
    )
    tp = Throughputs(pool.accelerators)
    res = simulate(pool, jobs, tp, get_policy("las"), SimConfig(round_seconds=60))
    assert res.preemptions.tolist() == [0, 0]
    assert res.end[0] == pytest.approx(7200.0) and res.end[1] > 7200.0


def test_preemptible_column_follows_appended_jobs():
    w = Workload.empty("live")
    w.append([Job(id="a", preemptible=False), Job(id="b")])
    assert w.preemptible.tolist() == [False, True] and w.job(0).preemptible is False
