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
        assert ctl.held()[st.flavor] == 1
        assert sup.wait_healthy(1, timeout_s=40), sup.events
        # the actor runs on the Ray node whose devices the placer bound
        assert p.poll() is None and p.node_id == rc.node_ids[r.node] and p.pid > 0
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
        # an engine that exits is restarted by the health check, in a fresh actor there
        ray.get(p.actor.stop.remote(0.5))
        end = time.time() + 10
        while p.poll() is None and time.time() < end:
            time.sleep(0.05)
        assert p.poll() is not None
        sup.check()
        assert r.restarts == 1 and p.rc is None
        assert sup.wait_healthy(1, timeout_s=40), sup.events
        assert p.poll() is None and p.node_id == rc.node_ids[r.node]
        # a scale-down drains, then stops the actor and removes its group
        sup.drain_s = 0.0
        sup.scale_to(0)
        assert sup.endpoints() == []
        sup.check()
        assert not sup.draining
        end = time.time() + 15  # the stop runs beside the round: its actor goes once it is done
        while sup.reap_stopping() and time.time() < end:
            time.sleep(0.1)
        assert _gone(f"cpool-svc-{p.tag}-1")
        assert _gone(f"cpool-svc-{p.tag}-0")
        end = time.time() + 10
        while placement_group_table(p.group)["state"] != "REMOVED" and time.time() < end:
            time.sleep(0.1)
        assert placement_group_table(p.group)["state"] == "REMOVED"
        assert placer.held.get(-1) is None  # its device went back to the pool
        assert (tmp_path / "services" / f"chat-{r.host}-{r.port}.log").exists()
    finally:
        ctl.stop()


SERVICES = """
name: ray-chat
traffic: {source: azure-llm-2023, rate_scale: 0.05, duration_hours: 0.25, seed: 0}
serving: {interval_s: 10, packing: false}
services:
  - name: chat
    model: qwen2.5-1.5b
    trace: conv
    accelerators: [H800]
    min_replicas: 1
    max_replicas: 1
    engine_args: ["--start-delay", "0"]
    slo: {ttft_p99_s: 2.0, tbt_p99_s: 0.1}
"""


def _svc_actors() -> list[str]:
    return [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("cpool-svc-") and not _gone(a["name"])
    ]


def test_cpool_serve_on_ray_runs_services_on_ray_nodes_behind_the_gateway(
    cluster,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """``cpool serve --backend ray --services FILE``: the replica runs on a Ray node, and the
    gateway answers an OpenAI completion from it; the server's exit stops it."""
    from tests.server.conftest import admin_token, bearer
    from tests.server.serverproc import ServerProcess

    c, _ = cluster
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'cpool.db'}"
    (tmp_path / "svc.yaml").write_text(SERVICES)
    admin = bearer(admin_token(data, url))
    monkeypatch.setenv("RAY_ADDRESS", c.address)
    server = ServerProcess(data, url, "--backend", "ray", "--round-seconds", "0.2",
                           "--services", str(tmp_path / "svc.yaml"))  # fmt: skip
    try:
        server.start(timeout=90)
        assert httpx.post(server.url + "/v1/tenants", json={"name": "t"}, headers=admin).is_success
        who = bearer(httpx.post(server.url + "/v1/tenants/t/tokens", headers=admin).json()["token"])
        end = time.time() + 60
        while not (st := httpx.get(server.url + "/services", headers=admin, timeout=10).json())[0][
            "healthy"
        ]:
            assert time.time() < end, st
            time.sleep(0.2)
        (where,) = st[0]["devices"]
        assert where["node"].startswith("ulq-h800-") and len(where["devices"]) == 1
        body = {"model": "chat", "prompt": "Hello", "max_tokens": 3}
        got = httpx.post(server.url + "/v1/completions", json=body, headers=who, timeout=30)
        assert got.status_code == 200, got.text
        assert got.json()["usage"]["completion_tokens"] == 3
        assert len(_svc_actors()) == 1
    finally:
        server.stop()
    end = time.time() + 15
    while _svc_actors() and time.time() < end:
        time.sleep(0.2)
    assert _svc_actors() == []
