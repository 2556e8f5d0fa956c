"""``cpool agent`` driving a Ray cluster: an agent on a small real Ray cluster (the fixture of
tests/backends/test_ray.py) registers with a real control plane on loopback, runs the jobs the
control plane places on it as Ray actors, and reports their exits and logs."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ray = pytest.importorskip("ray")

from computepool.admission.rulebook import load_rulebook  # noqa: E402
from computepool.backends.ray_backend import RayCluster  # noqa: E402
from computepool.backends.ray_inventory import current_nodes, pool_from_nodes  # noqa: E402
from computepool.catalog.regions import load_regions  # noqa: E402
from computepool.federation.agent import Agent, AgentConfig  # noqa: E402
from computepool.federation.faults import overlaps, runs_of, worker_argv  # noqa: E402
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


class Stepper:
    """Runs an agent's turns in a thread; ``paused`` stops them (as SIGSTOP stops a process:
    no heartbeat, nothing observed), ``stop`` ends the agent the way SIGTERM does."""

    def __init__(self, agent: Agent) -> None:
        self.agent, self.paused = agent, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        a = self.agent
        a.start_fence()
        try:
            while not a.stop_event.is_set():
                if self.paused.is_set():
                    time.sleep(0.05)
                else:
                    a.step()
        finally:
            a.close()

    def stop(self) -> None:
        self.paused.clear()
        self.agent.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@contextlib.contextmanager
def ray_federation(tmp_path: Path, lease_s: float = 3.0):
    """A control plane on loopback and one agent (``ray-east``) driving the Ray fixture."""
    nodes = current_nodes(ray.nodes())
    lb = Loopback(
        tmp_path, (ClusterDef("ray-east", "cn-ulanqab", "H800"),), lease_s=lease_s,
        grace_s=1.0, tenants={"acme": []},
    ).setup()  # fmt: skip
    (tmp_path / "pool.yaml").write_text(POOL)
    regions = {n: r.jurisdiction for n, r in load_regions().items()}

    def make(pool, root, describe, grace_s):
        return RayCluster(pool, nodes, root, describe, grace_s=grace_s, health_every_s=0.2)

    stepper = None
    try:
        lb.start_server()
        cfg = AgentConfig(
            url=lb.url, token=(tmp_path / "ray-east.token").read_text().strip(),
            cluster="ray-east", pool=pool_from_nodes(nodes), data_dir=tmp_path / "agent",
            rulebook=load_rulebook(), regions=regions, grace_s=1.0,
            checkpoint_dir=tmp_path / "checkpoints",
        )  # fmt: skip
        stepper = Stepper(Agent(cfg, make_cluster=make))
        assert isinstance(stepper.agent.local, RayCluster)
        stepper.thread.start()
        lb.wait_clusters(["ray-east"], timeout=30)
        yield lb, stepper
    finally:
        if stepper is not None:
            stepper.stop()
        lb.close()


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("cluster")
def test_an_agent_on_a_ray_cluster_registers_runs_jobs_and_reports_exits(tmp_path):
    with ray_federation(tmp_path) as (lb, stepper):
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
        # the workers ran as Ray actors under the agent's data dir
        assert len(list((tmp_path / "agent" / "runs").iterdir())) == 2
        assert not stepper.agent.local.running


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("cluster")
def test_a_paused_ray_agents_workers_die_before_its_lease_ends_and_run_once(tmp_path):
    """The agent stops heartbeating (paused): its Ray workers kill themselves by the fence
    time it put on record in the cluster, before the control plane may requeue the job;
    resumed, the agent registers again and the job runs again, never at the same time."""
    lease_s = 3.0
    trace = tmp_path / "trace"
    trace.mkdir()
    with ray_federation(tmp_path, lease_s=lease_s) as (lb, stepper):
        spec = {"accelerators_per_worker": 2, "accelerator_types": ["H800"]}
        jid = lb.submit("acme", {**spec, "name": "long", "command": worker_argv(trace, 60)})
        _wait("first run", lambda: runs_of(trace, jid), timeout=30)
        stepper.paused.set()
        paused_at = time.time()
        time.sleep(lease_s + 0.5)
        (first,) = runs_of(trace, jid)
        assert first[1] < paused_at + lease_s, (first, paused_at)  # gone before the lease
        stepper.paused.clear()
        runs = _wait("a second run", lambda: (r := runs_of(trace, jid)) and len(r) >= 2 and r)
        time.sleep(0.5)
        runs = runs_of(trace, jid)
        assert overlaps(runs) == [], f"job {jid} ran twice at once: {runs}"
