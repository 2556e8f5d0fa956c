"""Services on the Ray backend: each replica an actor on the Ray node that owns its devices.

The Ray test cluster of ``test_ray.py`` (a head and three worker nodes, CPU and memory pinned
small): an emulated service's replica is bound to devices of an H800 node by the placer, runs
there as a Ray actor's command, answers an OpenAI completion on its node's address and
through the service's endpoint, and a scale-down stops its actor and frees its Ray resources.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from fastapi.testclient import TestClient  # noqa: E402
from ray.util.placement_group import placement_group_table  # noqa: E402

from computepool.backends.ray_backend import RayCluster  # noqa: E402
from computepool.backends.ray_inventory import current_nodes, pool_from_nodes  # noqa: E402
from computepool.backends.ray_replicas import RayProcess, ray_runners  # noqa: E402
from computepool.backends.slots import SlotAssigner  # noqa: E402
from computepool.model.throughput import Throughputs  # noqa: E402
from computepool.model.workload import Workload  # noqa: E402
from computepool.policies import get_policy  # noqa: E402
from computepool.scheduler.loop import Scheduler, SchedulerConfig  # noqa: E402
from computepool.serving.http import endpoint_app  # noqa: E402
from computepool.serving.live_pool import LiveServingController  # noqa: E402
from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload  # noqa: E402
from computepool.serving.streams import RequestStream, TrafficSpec  # noqa: E402
from computepool.sim.cluster import SimClock, WorkloadSource  # noqa: E402
from tests.backends.test_ray import cluster  # noqa: E402, F401  (the module's Ray cluster)
from tests.fakes import RecordingCluster  # noqa: E402
from tests.serving.helpers import model  # noqa: E402


def _service_workload() -> ServingWorkload:
    svc = ServiceSpec("chat", model("qwen2.5-1.5b"), min_replicas=1, max_replicas=2,
                      accelerators=("H800",))  # fmt: skip
    s = RequestStream(np.linspace(0, 60, 30), np.full(30, 500.0), np.full(30, 20.0))
    return ServingWorkload((svc,), (s,), TrafficSpec(duration_s=60), ServingConfig(packing=False))


def _gone(actor_name: str) -> bool:
    try:
        a = ray.get_actor(actor_name, namespace="computepool")
    except ValueError:
        return True
    try:
        ray.get(a.ping.remote(), timeout=2)
    except Exception:
        return True
    return False


def test_a_replica_runs_on_its_ray_node_answers_and_scales_down(cluster, tmp_path):  # noqa: F811
    nodes = current_nodes(ray.nodes())
    pool = pool_from_nodes(nodes)
    rc = RayCluster(pool, nodes, tmp_path / "pool", lambda j: None)
    jobs = Workload.empty("live")
    placer = SlotAssigner(pool, lambda j: (1, 1))
    ctl = LiveServingController(pool, _service_workload(), log_dir=tmp_path, start_delay_s=0.0)
    ctl.bind_placer(placer)
    ctl.bind_runner(ray_runners(rc, tmp_path / "services"))
    sched = Scheduler(pool, jobs, Throughputs(pool.accelerators), get_policy("fifo"),
                      RecordingCluster(), SimClock(0.0), WorkloadSource(jobs),
                      SchedulerConfig(round_seconds=1.0), serving=ctl, placer=placer)  # fmt: skip
    st = ctl.states[0]
    sup = st.supervisor
    try:
        sched.step()
        (r,) = sup.replicas
        p = r.proc
        assert isinstance(p, RayProcess) and p.rc is None
        node = pool.nodes[r.node]
        assert node.accelerator == "H800" and len(r.devices) == 1
        # the actor runs on the Ray node whose devices the placer bound
        assert p.node_id == rc.node_ids[r.node]
        assert ctl.held()[st.flavor] == 1
        assert sup.wait_healthy(1, timeout_s=40), sup.events
        body = {"model": "chat", "prompt": "Hello", "max_tokens": 3}
        got = httpx.post(f"{r.url}/v1/completions", json=body, timeout=10)
        assert got.status_code == 200, got.text
        assert got.json()["usage"]["completion_tokens"] == 3
        # the service's stable endpoint forwards to the replica on its node
        with TestClient(endpoint_app(ctl.endpoints_of("chat"), "chat")) as client:
            via = client.post("/v1/completions", json=body)
        assert via.status_code == 200 and via.json()["choices"], via.text
        # the engine got its bound device in the vendor's variable, on that node
        dump = httpx.get(f"{r.url}/metrics", timeout=5)
        assert dump.status_code == 200 and "vllm:num_requests_running" in dump.text
        # a scale-down drains, then stops the actor and removes its group
        sup.drain_s = 0.0
        sup.scale_to(0)
        assert sup.endpoints() == []
        sup.check()
        assert not sup.draining and _gone(f"cpool-svc-{p.tag}-0")
        end = time.time() + 10
        while placement_group_table(p.group)["state"] != "REMOVED" and time.time() < end:
            time.sleep(0.1)
        assert placement_group_table(p.group)["state"] == "REMOVED"
        assert placer.held.get(-1) is None  # its device went back to the pool
        assert (tmp_path / "services" / f"chat-{r.host}-{r.port}.log").exists()
    finally:
        ctl.stop()
