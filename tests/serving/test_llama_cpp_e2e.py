"""A real engine end to end on the CPU: llama-cpp-python serving a tiny GGUF model the test
writes, started by the live pool as a replica of a service (``engine: llama-cpp-python``) on
its device slot, answering OpenAI completions through the replica's port and the service's
endpoint, its metrics read by the live autoscaler.

Opt-in by installation: it runs where ``pip install -e '.[engines]'`` was done (llama-cpp-python
builds llama.cpp from source: see docs/serving.md for the time it takes), and is skipped
otherwise.
"""

import asyncio
import importlib.util
import threading
import time

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gguf") is None,
    reason="llama-cpp-python / gguf not installed (opt-in: pip install -e '.[engines]', "
    "which compiles llama.cpp; see docs/serving.md 'A real engine on the CPU')",
)


def test_pool_runs_llama_cpp_python_as_a_replica(tmp_path):
    import uvicorn

    from computepool.backends.slots import SlotAssigner
    from computepool.catalog.accelerators import load_accelerators
    from computepool.model.throughput import Throughputs
    from computepool.model.workload import Workload
    from computepool.policies import get_policy
    from computepool.scheduler.loop import Scheduler, SchedulerConfig
    from computepool.serving.engines.launch import EngineChoice
    from computepool.serving.engines.tiny_gguf import write_tiny_llama
    from computepool.serving.http import endpoint_app
    from computepool.serving.live_pool import LiveServingController
    from computepool.serving.loadgen import replay
    from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
    from computepool.serving.streams import RequestStream, TrafficSpec
    from computepool.serving.supervisor import free_port
    from computepool.sim.cluster import SimClock, WorkloadSource
    from tests.fakes import RecordingCluster
    from tests.serving.helpers import gpu, model, one_node_pool

    gguf_path = write_tiny_llama(tmp_path / "tiny.gguf")
    base = one_node_pool(per_node=2, accel=gpu("H800"))
    pool = type(base)(base.name, {"H800": load_accelerators()["H800"]}, base.regions, base.nodes)
    svc = ServiceSpec("tiny", model("qwen2.5-1.5b"), min_replicas=1, max_replicas=2,
                      engine=EngineChoice("llama-cpp-python", str(gguf_path)))  # fmt: skip
    s = RequestStream(np.zeros(0), np.zeros(0), np.zeros(0))
    sw = ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60), ServingConfig(packing=False))
    jobs = Workload.from_jobs([])
    placer = SlotAssigner(pool, lambda j: (1, 1))
    ctl = LiveServingController(pool, sw, log_dir=tmp_path)
    ctl.bind_placer(placer)
    sched = Scheduler(pool, jobs, Throughputs(pool.accelerators), get_policy("fifo"),
                      RecordingCluster(), SimClock(0.0), WorkloadSource(jobs),
                      SchedulerConfig(round_seconds=1.0), serving=ctl, placer=placer)  # fmt: skip
    try:
        t0 = time.monotonic()
        sched.step()
        st = ctl.states[0]
        (r,) = st.supervisor.replicas
        assert st.supervisor.wait_healthy(timeout_s=120), tmp_path / f"tiny-{r.port}.log"
        ready_s = time.monotonic() - t0
        assert r.devices == (0,)
        st.autoscaler.observe(0.0)
        with httpx.Client(timeout=60) as c:
            assert [m["id"] for m in c.get(f"{r.url}/v1/models").json()["data"]] == ["tiny"]
            body = c.post(f"{r.url}/v1/completions", json={
                "model": "tiny", "prompt": "hello world", "max_tokens": 8, "temperature": 0,
            }).json()  # fmt: skip
        assert body["usage"]["completion_tokens"] == 8 and body["usage"]["prompt_tokens"] >= 2
        # through the service's stable endpoint, streamed, as the load generator sends
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(endpoint_app(st.supervisor.endpoints, "tiny"),
                                               host="127.0.0.1", port=port, log_level="error"))  # fmt: skip
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.02)
        n = 4
        res = asyncio.run(replay(f"http://127.0.0.1:{port}",
                                 RequestStream(np.linspace(0, 1, n), np.full(n, 16.0),
                                               np.full(n, 6.0)), model="tiny", text_prompts=True))  # fmt: skip
        server.should_exit = True
        th.join(timeout=5)
        assert (res.tokens == 6).all() and np.isfinite(res.ttft).all()
        seen, prompt_tokens, waiting = st.autoscaler.scrape()
        assert seen == 1 + n and prompt_tokens >= 2 + n * 16 and waiting == 0
        print(f"llama-cpp-python replica ready in {ready_s:.1f} s")
    finally:
        ctl.stop()
