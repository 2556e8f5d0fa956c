"""``cpool agent`` driving a Ray cluster: an agent on a small real Ray cluster (the fixture of
tests/backends/test_ray.py) registers with a real control plane on loopback, runs the jobs the
control plane places on it as Ray actors, and reports their exits and logs."""

from __future__ import annotations

import sys
import threading
import time

import httpx
import pytest

ray = pytest.importorskip("ray")

from computepool.admission.rulebook import load_rulebook  # noqa: E402
from computepool.backends.ray_backend import RayCluster  # noqa: E402
from computepool.backends.ray_inventory import current_nodes, pool_from_nodes  # noqa: E402
from computepool.catalog.regions import load_regions  # noqa: E402
from computepool.federation.agent import Agent, AgentConfig  # noqa: E402
from computepool.federation.loopback import ClusterDef, Loopback  # noqa: E402
from tests.backends.test_ray import cluster  # noqa: E402, F401 (the module's Ray cluster)

PY = sys.executable
#: The control plane's pool: the fixture's Ray nodes (names, regions, devices).
POOL = """name: ray-federation
regions: [cn-ulanqab, cn-hangzhou]
node_groups:
  - {prefix: ulq-h800, region: cn-ulanqab, accelerator: H800, per_node: 4, nodes: 2}
  - {prefix: hz-910b, region: cn-hangzhou, accelerator: Ascend910B, per_node: 4, nodes: 1}
"""


def _wait(what, ok, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if got := ok():
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:g} s")


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("cluster")
def test_an_agent_on_a_ray_cluster_registers_runs_jobs_and_reports_exits(tmp_path):
    nodes = current_nodes(ray.nodes())
    pool = pool_from_nodes(nodes)
    lb = Loopback(
        tmp_path, (ClusterDef("ray-east", "cn-ulanqab", "H800"),), lease_s=3.0,
        grace_s=1.0, tenants={"acme": []},
    ).setup()  # fmt: skip
    (tmp_path / "pool.yaml").write_text(POOL)
    regions = {n: r.jurisdiction for n, r in load_regions().items()}
    cfg = AgentConfig(
        url="", token=(tmp_path / "ray-east.token").read_text().strip(), cluster="ray-east",
        pool=pool, data_dir=tmp_path / "agent", rulebook=load_rulebook(), regions=regions,
        grace_s=1.0, checkpoint_dir=tmp_path / "checkpoints",
    )  # fmt: skip

    def make(pool, root, describe, grace_s):
        return RayCluster(pool, nodes, root, describe, grace_s=grace_s, health_every_s=0.2)

    agent: Agent | None = None
    thread = None
    try:
        lb.start_server()
        cfg.url = lb.url
        agent = Agent(cfg, make_cluster=make)
        assert isinstance(agent.local, RayCluster)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        lb.wait_clusters(["ray-east"], timeout=30)
        (state,) = lb.clusters_state()
        assert state["name"] == "ray-east"
        code = "import os, sys; print('on', os.environ['CPOOL_NODE'], flush=True); sys.exit({})"
        spec = {"accelerators_per_worker": 2, "accelerator_types": ["H800"]}
        ok = lb.submit("acme", {**spec, "name": "ok", "command": [PY, "-c", code.format(0)]})
        bad = lb.submit("acme", {**spec, "name": "bad", "command": [PY, "-c", code.format(7)]})
        done = ("succeeded", "failed", "cancelled", "refused")
        _wait(
            "both jobs ended", lambda: all(lb.job("acme", j)["status"] in done for j in (ok, bad))
        )
        j_ok, j_bad = lb.job("acme", ok), lb.job("acme", bad)
        assert j_ok["status"] == "succeeded", j_ok
        assert (j_bad["status"], j_bad["exit_code"]) == ("failed", 7), j_bad
        logs = httpx.get(
            f"{lb.url}/v1/jobs/{ok}/logs", headers=lb.auth(lb.tokens["acme"]), timeout=10
        )
        assert logs.status_code == 200 and "on ulq-h800-" in logs.text
        # the workers ran as Ray actors under the agent's data dir, and nothing is left
        runs = sorted(p.name for p in (tmp_path / "agent" / "runs").iterdir())
        assert len(runs) == 2
        assert not agent.local.running
    finally:
        if agent is not None:
            agent.stop_event.set()
        if thread is not None:
            thread.join(timeout=30)
        lb.close()
    assert thread is not None and not thread.is_alive()
