"""Replicas bound to device slots of the live pool's placer, as jobs are."""

import subprocess

import numpy as np
import pytest

from computepool.backends.engine_placer import LivePlacer
from computepool.backends.slots import SlotAssigner
from computepool.model.job import Job
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.serving.binding import ServiceSlots, replica_keys
from computepool.serving.supervisor import Replica
from tests.serving.helpers import gpu, one_node_pool


def _replica(port: int) -> Replica:
    return Replica(port, None, 0.0)


def _placers(pool, jobs):
    shape = lambda j: (1, int(jobs.scale_factor[j]))  # noqa: E731
    return [SlotAssigner(pool, shape),
            LivePlacer(pool, jobs, Throughputs(pool.accelerators), shape, "bestfit")]  # fmt: skip


@pytest.mark.parametrize("which", [0, 1], ids=["slots", "placement-engine"])
def test_whole_replicas_take_distinct_devices_and_jobs_avoid_them(which):
    pool = one_node_pool(per_node=4, accel=gpu("H800"))
    jobs = Workload.from_jobs([Job(id="j", workers=2, total_steps=1e9)])
    placer = _placers(pool, jobs)[which]
    slots = ServiceSlots(placer, 0, 2.0, replica_keys())
    a, b, c = _replica(1), _replica(2), _replica(3)
    assert slots.take(a) and slots.take(b)
    assert a.node == b.node == 0 and not set(a.devices) & set(b.devices)
    assert len(a.devices) == 2 and slots.held() == 4
    assert not slots.take(c)  # the node is full
    _, placed = placer.place(np.array([0]), np.array([0]), 0.0)
    assert not placed[0]  # the job cannot land on the replicas' devices
    slots.give(a)
    out, placed = placer.place(np.array([0]), np.array([0]), 0.0)
    assert placed[0] and set(out[0].workers[0][1]) == set(a.devices)
    assert slots.held() == 2


def test_packed_replicas_share_a_bound_device():
    pool = one_node_pool(per_node=2, accel=gpu("H800"))
    jobs = Workload.from_jobs([Job(id="j", workers=2, total_steps=1e9)])
    placer = _placers(pool, jobs)[0]
    slots = ServiceSlots(placer, 0, 0.5, replica_keys())
    rs = [_replica(p) for p in (1, 2, 3)]
    assert all(slots.take(r) for r in rs)
    assert rs[0].devices == rs[1].devices != rs[2].devices and slots.held() == 2
    slots.give(rs[0])
    assert slots.held() == 2  # rs[1] still uses that device
    slots.give(rs[1])
    slots.give(rs[2])
    assert slots.held() == 0
    _, placed = placer.place(np.array([0]), np.array([0]), 0.0)
    assert placed[0]


def test_live_controller_starts_replicas_on_their_devices(tmp_path):
    """The replica process gets its slots in CUDA_VISIBLE_DEVICES; a job placed in the same
    round gets the other devices; /v1/pool's counter (held) follows the bound devices."""
    from computepool.catalog.accelerators import load_accelerators
    from computepool.policies import get_policy
    from computepool.scheduler.loop import Scheduler, SchedulerConfig
    from computepool.serving.live_pool import LiveServingController
    from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
    from computepool.serving.streams import RequestStream, TrafficSpec
    from computepool.sim.cluster import SimClock, WorkloadSource
    from tests.fakes import RecordingCluster
    from tests.serving.helpers import model

    base = one_node_pool(per_node=4, accel=gpu("H800"))
    pool = type(base)(base.name, {"H800": load_accelerators()["H800"]}, base.regions, base.nodes)
    svc = ServiceSpec("chat", model("qwen2.5-1.5b"), min_replicas=1, max_replicas=2)
    s = RequestStream(np.linspace(0, 60, 30), np.full(30, 500.0), np.full(30, 20.0))
    sw = ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60), ServingConfig(packing=False))
    jobs = Workload.from_jobs([Job(id="train", workers=3, total_steps=1e9)])
    placer = SlotAssigner(pool, lambda j: (1, int(jobs.scale_factor[j])))
    ctl = LiveServingController(pool, sw, log_dir=tmp_path, start_delay_s=0.0)
    ctl.bind_placer(placer)
    sched = Scheduler(pool, jobs, Throughputs(pool.accelerators), get_policy("fifo"),
                      RecordingCluster(), SimClock(0.0), WorkloadSource(jobs),
                      SchedulerConfig(round_seconds=1.0), serving=ctl, placer=placer)  # fmt: skip
    try:
        sched.step()
        st = ctl.states[0]
        (r,) = st.supervisor.replicas
        assert r.node == 0 and len(r.devices) == 1
        env = _environ(r.proc)
        assert env["CUDA_VISIBLE_DEVICES"] == env["CPOOL_VISIBLE_DEVICES"] == str(r.devices[0])
        assert sched.active.running.tolist() == [0]
        (job_devices,) = [d for _, d in placer.held[0]]
        assert r.devices[0] not in job_devices and len(job_devices) == 3
        assert ctl.held().tolist() == [1.0]
        assert ctl.status()[0]["devices"] == [{"node": "n0", "devices": list(r.devices)}]
    finally:
        ctl.stop()
    assert placer.held.get(-1) is None  # the stopped replica gave its device back


def _environ(proc: subprocess.Popen) -> dict[str, str]:
    with open(f"/proc/{proc.pid}/environ", "rb") as f:
        raw = f.read().split(b"\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x)


def test_metrics_count_service_accelerators_per_flavor():
    from types import SimpleNamespace

    from computepool.server.metrics import Metrics

    pool = one_node_pool(per_node=4, accel=gpu("H800"))
    st = SimpleNamespace(spec=SimpleNamespace(name="chat"),
                         supervisor=SimpleNamespace(replicas=[1, 2]))  # fmt: skip
    serving = SimpleNamespace(held=lambda: np.array([2.0]), states=[st])
    m = Metrics()
    m.observe_services(SimpleNamespace(serving=serving, pool=pool))
    assert m.serving_now == {pool.flavors[0].name: 2}
    text = m.render().decode()
    assert (
        "cpool_flavor_service_accelerators" in text
        and 'cpool_service_replicas{service="chat"} 2.0' in text
    )


def test_a_scale_up_on_a_preempted_jobs_devices_waits_for_them(tmp_path):
    """The victim still holds its slots when the round evicts it: the new replica is held
    (pending, counted) and starts on those devices in the next round."""
    from computepool.catalog.accelerators import load_accelerators
    from computepool.policies import get_policy
    from computepool.scheduler.loop import Scheduler, SchedulerConfig
    from computepool.serving.live_pool import LiveServingController
    from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
    from computepool.serving.streams import RequestStream, TrafficSpec
    from computepool.sim.cluster import SimClock, WorkloadSource
    from tests.fakes import RecordingCluster
    from tests.serving.helpers import model

    base = one_node_pool(per_node=4, accel=gpu("H800"))
    pool = type(base)(base.name, {"H800": load_accelerators()["H800"]}, base.regions, base.nodes)
    svc = ServiceSpec("chat", model("qwen2.5-1.5b"), min_replicas=1, max_replicas=4)
    s = RequestStream(np.linspace(0, 60, 30), np.full(30, 500.0), np.full(30, 20.0))
    sw = ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60), ServingConfig(packing=False))
    jobs = Workload.from_jobs([
        Job(id="prod", workers=2, total_steps=1e9, preemptible=False),
        Job(id="spot", workers=1, total_steps=1e9, preemptible=True),
    ])  # fmt: skip
    placer = SlotAssigner(pool, lambda j: (1, int(jobs.scale_factor[j])))
    ctl = LiveServingController(pool, sw, log_dir=tmp_path, start_delay_s=0.0)
    ctl.bind_placer(placer)
    clock = SimClock(0.0)
    sched = Scheduler(pool, jobs, Throughputs(pool.accelerators), get_policy("fifo"),
                      RecordingCluster(), clock, WorkloadSource(jobs),
                      SchedulerConfig(round_seconds=1.0), serving=ctl, placer=placer)  # fmt: skip
    try:
        sched.step()
        st = ctl.states[0]
        assert len(st.supervisor.replicas) == 1 and sched.active.running.tolist() == [0, 0]
        spot_devices = placer.held[1][0][1]
        st.want = 2
        ctl._next = float("inf")
        clock.sleep_until(1.0)
        sched.step()
        assert sched.history.preemptions.tolist() == [0, 1]
        assert len(st.supervisor.replicas) == 1 and st.pending == 1
        assert ctl.held().tolist() == [2.0]  # one started, one waiting for the spot's device
        clock.sleep_until(2.0)
        sched.step()
        assert len(st.supervisor.replicas) == 2 and st.pending == 0
        assert st.supervisor.replicas[1].devices == spot_devices
        assert ctl.held().tolist() == [2.0]
        assert sched.active.running.tolist()[0] == 0  # prod untouched
    finally:
        ctl.stop()


def test_a_services_measured_profile_sets_its_replicas_capacity(tmp_path):
    """A real engine's own speed (profiles:) replaces the performance model's numbers in the
    live autoscaler (a CPU engine is far slower than the catalog card it is placed on)."""
    from computepool.catalog.accelerators import load_accelerators
    from computepool.serving.live_pool import LiveServingController
    from computepool.serving.perf import Profile
    from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
    from computepool.serving.streams import RequestStream, TrafficSpec
    from tests.serving.helpers import model

    base = one_node_pool(per_node=4, accel=gpu("H800"))
    pool = type(base)(base.name, {"H800": load_accelerators()["H800"]}, base.regions, base.nodes)
    s = RequestStream(np.linspace(0, 60, 30), np.full(30, 32.0), np.full(30, 16.0))

    def timing(profiles):
        svc = ServiceSpec("chat", model("qwen2.5-1.5b"), tbt_slo_s=0.5, profiles=profiles)
        # the previous period (the shape is chosen from it) looked like this one
        sw = ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60),
                             ServingConfig(packing=False), past=(s,))  # fmt: skip
        ctl = LiveServingController(pool, sw, log_dir=tmp_path)
        try:
            return ctl.states[0].autoscaler.timing
        finally:
            ctl.stop()

    slow = timing((Profile("H800", 1, 300.0, 0.03, 0.03),))
    fast = timing(())
    assert slow.a == pytest.approx(0.03) and slow.c == pytest.approx(0.03)
    assert fast.a < 0.03 and slow.flops < fast.flops / 100
