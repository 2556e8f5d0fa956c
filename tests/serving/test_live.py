"""Live pieces on 127.0.0.1: the emulated replica, the supervisor (restart), the load generator."""

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn

from computepool.serving.emulator import EmulatedEngine, replica_timing
from computepool.serving.engines.metrics import VLLM, read_load
from computepool.serving.http import endpoint_app
from computepool.serving.loadgen import replay
from computepool.serving.streams import RequestStream
from computepool.serving.supervisor import Supervisor, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "examples/serving/emulated_replica.py"


def _command(port: int) -> list[str]:
    return [sys.executable, str(SCRIPT), "--model", "qwen2.5-1.5b", "--accelerator", "H800",
            "--port", str(port), "--start-delay", "0"]  # fmt: skip


def test_engine_token_timing_follows_the_performance_model():
    t = replica_timing("qwen2.5-7b", "H800")
    eng = EmulatedEngine(t)

    async def go():
        runner = asyncio.create_task(eng.run())
        t0 = time.perf_counter()
        stamps = [time.perf_counter() - t0 async for _ in eng.generate(1000, 11)]
        runner.cancel()
        return np.array(stamps)

    stamps = asyncio.run(go())
    assert len(stamps) == 11
    tbt = np.diff(stamps).mean()
    step = t.a + t.c + (1000 + 5) * t.kvr  # one sequence in the batch
    # sleeps never end early; on a loaded machine they may end late
    assert step * 0.95 <= tbt <= step * 3 + 0.02
    assert eng.stats.generated_tokens_total == 11 and eng.stats.completed_total == 1


def test_metrics_text_round_trips_through_the_vllm_adapter():
    from computepool.serving.emulator import EngineStats, metrics_text

    st = EngineStats(requests_total=9, completed_total=5, waiting=2, running=2,
                     prompt_tokens_total=700)  # fmt: skip
    st.first_token(0.3)
    text = metrics_text(st, "chat")
    assert 'vllm:num_requests_waiting{model_name="chat"} 2.0' in text
    load = read_load(text, VLLM)
    assert load.requests_total == 9 and load.waiting == 2 and load.prompt_tokens_total == 700
    assert load.ttft_count == 1 and load.ttft_sum == 0.3


def test_crashed_replica_is_restarted_and_serves_again(tmp_path):
    with Supervisor(_command, name="t", log_dir=tmp_path, startup_s=30) as sup:
        sup.scale_to(1)
        assert sup.wait_healthy(timeout_s=30)
        r = sup.replicas[0]
        old = r.proc.pid
        os.killpg(old, signal.SIGKILL)
        r.proc.wait(timeout=5)
        did = sup.check()
        assert did and "restarted" in did[0]
        assert r.restarts == 1 and r.proc.pid != old
        assert sup.wait_healthy(timeout_s=30)
        assert [e[1] for e in sup.events] == ["started", "exited", "restarted"]
        pid = r.proc.pid
    assert sup.replicas == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_endpoint_and_load_generator_against_emulated_replicas(tmp_path):
    with Supervisor(_command, name="t", log_dir=tmp_path, startup_s=30) as sup:
        sup.scale_to(2)
        assert sup.wait_healthy(timeout_s=30)
        port = free_port()
        app = endpoint_app(sup.endpoints, "t")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.02)
        n = 20
        s = RequestStream(np.linspace(0, 2, n), np.full(n, 500.0), np.full(n, 8.0))
        res = asyncio.run(replay(f"http://127.0.0.1:{port}", s))
        server.should_exit = True
        th.join(timeout=5)
        assert np.isfinite(res.ttft).all() and (res.tokens == 8).all()
        assert res.attainment(2.0, 0.1).mean() == 1.0
    with pytest.raises(ValueError, match="only targets 127.0.0.1"):
        asyncio.run(replay("http://example.com:80", s))


def test_live_serving_controller_reserves_preempts_spot_and_restarts(tmp_path):
    """The live hook on a tiny pool: a replica starts on a free device, a scale-up preempts
    only the preemptible job, a killed replica comes back."""
    from computepool.model.job import Job
    from computepool.model.throughput import Throughputs
    from computepool.model.workload import Workload
    from computepool.policies import get_policy
    from computepool.scheduler.loop import Scheduler, SchedulerConfig
    from computepool.serving.live_pool import LiveServingController
    from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
    from computepool.serving.streams import TrafficSpec
    from computepool.sim.cluster import SimClock, WorkloadSource
    from tests.fakes import RecordingCluster
    from tests.serving.helpers import gpu, model, one_node_pool

    pool = one_node_pool(per_node=4, accel=gpu("H800"))
    pool = type(pool)(pool.name, {"H800": __import__(
        "computepool.catalog.accelerators", fromlist=["x"]).load_accelerators()["H800"]},
        pool.regions, pool.nodes)  # fmt: skip
    svc = ServiceSpec("chat", model("qwen2.5-1.5b"), min_replicas=1, max_replicas=4)
    s = RequestStream(np.linspace(0, 60, 30), np.full(30, 500.0), np.full(30, 20.0))
    sw = ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60), ServingConfig(packing=False))
    jobs = Workload.from_jobs([
        Job(id="prod", workers=2, total_steps=1e9, preemptible=False),
        Job(id="spot", workers=1, total_steps=1e9, preemptible=True),
    ])  # fmt: skip
    ctl = LiveServingController(pool, sw, log_dir=tmp_path, start_delay_s=0.0)
    clock = SimClock(0.0)
    sched = Scheduler(pool, jobs, Throughputs(pool.accelerators), get_policy("fifo"),
                      RecordingCluster(), clock, WorkloadSource(jobs),
                      SchedulerConfig(round_seconds=1.0), serving=ctl)  # fmt: skip
    try:
        sched.step()
        assert ctl.held().tolist() == [1.0]  # the replica took the free... one of 4
        assert sched.active.running.tolist() == [0, 0]  # prod 2 + spot 1 + replica 1 = 4
        st = ctl.states[0]
        assert st.supervisor.wait_healthy(timeout_s=30)
        st.want = 2  # the autoscaler asks for one more: no free device left
        ctl._next = float("inf")
        clock.sleep_until(1.0)
        sched.step()
        assert sched.history.preemptions.tolist() == [0, 1]  # only the spot job
        assert len(st.supervisor.replicas) == 2 and ctl.held().tolist() == [2.0]
        r = st.supervisor.replicas[0]
        os.killpg(r.proc.pid, signal.SIGKILL)
        r.proc.wait(timeout=5)
        clock.sleep_until(2.0)
        sched.step()  # the round's health check restarts it
        assert r.restarts == 1
        assert st.supervisor.wait_healthy(timeout_s=30)
    finally:
        ctl.stop()
    assert all(r.proc.poll() is not None for r in st.supervisor.replicas) or not (
        st.supervisor.replicas
    )
