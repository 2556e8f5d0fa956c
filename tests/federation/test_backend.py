"""The federated backend alone (no HTTP, no processes): a job never has two attempts alive,
a lost cluster's jobs are requeued and its flavors leave the round gate."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.backends.worker_env import Launch
from computepool.catalog.pools import load_pool
from computepool.federation.agent import inventory_of
from computepool.federation.backend import FederatedCluster, StaleSession
from computepool.federation.loopback import ClusterDef, pool_yaml
from computepool.federation.protocol import HeartbeatIn, Report
from computepool.scheduler.interfaces import Placement, RoundPlan

ALPHA = ClusterDef("alpha", "cn-ulanqab", "H800", nodes=1)
BETA = ClusterDef("beta", "cn-ulanqab", "A800", nodes=1)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def setup(tmp_path):
    (tmp_path / "all.yaml").write_text(pool_yaml("all", (ALPHA, BETA)))
    pool = load_pool(str(tmp_path / "all.yaml"))
    mono = Clock()
    fed = FederatedCluster(
        pool, tmp_path, lambda j: Launch(key=str(j + 1), argv=("true",)), lease_s=10.0,
        monotonic=mono,
    )  # fmt: skip
    for c in (ALPHA, BETA):
        (tmp_path / f"{c.name}.yaml").write_text(pool_yaml(c.name, (c,)))
        inv = inventory_of(load_pool(str(tmp_path / f"{c.name}.yaml")))
        fed.register(c.name, inv, 1, "", None)
    fed.observe(0.0)
    return fed, pool, mono


def start_plan(job: int, node: int, flavor: int, stop=()) -> RoundPlan:
    return RoundPlan(
        0.0, 1.0,
        stop=np.asarray(stop, dtype=np.int64),
        start=np.asarray([job], dtype=np.int64),
        start_flavor=np.asarray([flavor], dtype=np.int64),
        placements=(Placement(job, flavor, ((node, (0,)),)),),
    )  # fmt: skip


def beat(fed, name: str, reports=(), attempts=()):
    return fed.heartbeat(
        HeartbeatIn(cluster=name, epoch=1, reports=list(reports), attempts=list(attempts))
    )


def test_a_moved_job_starts_only_once_its_old_attempt_is_gone(tmp_path):
    fed, pool, _ = setup(tmp_path)
    a_node = next(i for i, n in enumerate(pool.nodes) if n.name.startswith("alpha"))
    b_node = next(i for i, n in enumerate(pool.nodes) if n.name.startswith("beta"))
    fa, fb = int(pool.node_flavor[a_node]), int(pool.node_flavor[b_node])
    fed.apply(start_plan(0, a_node, fa))
    (cmd,) = beat(fed, "alpha").start
    beat(fed, "alpha", [Report(id=cmd.id, state="running")], [cmd.id])
    fed.apply(start_plan(0, b_node, fb, stop=[0]))  # preempted on alpha, placed on beta
    assert beat(fed, "beta").start == []  # held: alpha still stops it
    out = beat(fed, "alpha", attempts=[cmd.id])
    assert [s.id for s in out.stop] == [cmd.id]
    beat(fed, "alpha", [Report(id=cmd.id, state="stopped")])
    (moved,) = beat(fed, "beta").start
    assert moved.workers[0][0].startswith("beta") and moved.attempt == cmd.attempt + 1


def test_a_lost_cluster_requeues_its_jobs_and_leaves_the_gate(tmp_path):
    fed, pool, mono = setup(tmp_path)
    a_node = next(i for i, n in enumerate(pool.nodes) if n.name.startswith("alpha"))
    fa = int(pool.node_flavor[a_node])
    fed.apply(start_plan(0, a_node, fa))
    (cmd,) = beat(fed, "alpha").start
    beat(fed, "alpha", [Report(id=cmd.id, state="running")], [cmd.id])
    assert fed.live_flavors().all()
    mono.t += 5
    beat(fed, "beta")
    mono.t += 6  # alpha's lease (10 s) is over, beta renewed 6 s ago
    obs = fed.observe(1.0)
    assert obs.failed.tolist() == [0] and obs.capacity_changed
    assert fed.live_flavors().tolist() == [i != fa for i in range(len(pool.flavors))]
    assert {c["name"]: c["state"] for c in fed.clusters()} == {"alpha": "lost", "beta": "ready"}
    late = Report(id=cmd.id, state="exited", rc=0)
    with pytest.raises(StaleSession, match="register again"):
        beat(fed, "alpha", [late])
    assert fed.observe(2.0).completed.size == 0
