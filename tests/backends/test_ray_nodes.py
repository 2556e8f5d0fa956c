"""The Ray backend's watch over its nodes (``backends/ray_nodes.py``) and the round gate it
gives the service (``wrap_gate``): no Ray cluster, the node list is given."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("ray")

from computepool.backends.flavor_gate import live_flavors  # noqa: E402
from computepool.backends.ray_backend import RayCluster  # noqa: E402
from computepool.backends.ray_inventory import nodes_from_ray, pool_from_nodes  # noqa: E402
from tests.backends.test_ray_inventory import h800, rec  # noqa: E402
from tests.fakes import TenantGate  # noqa: E402


def ascend(i, alive=True, node_id=None):
    lb = {"cpool/region": "cn-hangzhou", "cpool/node": f"hz-910b-{i}"}
    return rec(node_id or f"a{i}" * 28, {"CPU": 1.0, "accel:Ascend910B": 4.0}, lb, alive)


class Cordons:
    def __init__(self) -> None:
        self.cordoned: set[int] = set()

    def cordon(self, i: int) -> None:
        self.cordoned.add(i)

    def uncordon(self, i: int) -> None:
        self.cordoned.discard(i)


def _cluster(tmp_path, listing: list):
    raw = [h800(0), h800(1), ascend(0)]
    nodes = nodes_from_ray(raw)
    pool = pool_from_nodes(nodes)
    c = RayCluster(pool, nodes, tmp_path, lambda j: None, health_every_s=0.0,
                   list_nodes=lambda: listing[-1])  # fmt: skip
    listing.append(raw)
    placer = Cordons()
    c.bind_placer(placer)
    return c, pool, placer


def _inp(pool, tenants=(0, 0)):
    n = len(tenants)
    return SimpleNamespace(
        job=np.arange(n),
        tenant=np.array(tenants),
        feasible=np.ones((n, len(pool.flavors)), dtype=bool),
    )


def test_live_flavors_need_one_node_up():
    node_flavor = np.array([0, 0, 1, 2])
    assert live_flavors(node_flavor, 4, set()).tolist() == [True, True, True, False]
    assert live_flavors(node_flavor, 4, {0, 3}).tolist() == [True, True, False, False]
    assert live_flavors(node_flavor, 4, {0, 1, 2, 3}).tolist() == [False] * 4


def test_a_flavor_whose_every_ray_node_is_down_leaves_the_round_and_comes_back(tmp_path):
    """A dead Ray node's flavor stayed in the policy's capacity: a sticky requeued job could
    wait for it for good. Now the round leaves out a flavor with no live node."""
    listing: list = []
    c, pool, placer = _cluster(tmp_path, listing)
    hz = next(k for k, f in enumerate(pool.flavors) if f.accelerator == "Ascend910B")
    ulq = next(k for k, f in enumerate(pool.flavors) if f.accelerator == "H800")
    hz_node = next(i for i, n in enumerate(pool.nodes) if n.accelerator == "Ascend910B")
    gate = c.wrap_gate(TenantGate({0}))
    inp = _inp(pool, (0, 1))
    assert gate.eligible(inp).tolist() == [[True, True], [False, False]]
    assert not c.observe(1.0).capacity_changed
    # one of the two H800 nodes dies: H800 still has a live node, it stays
    listing.append([h800(0, alive=False), h800(1), ascend(0)])
    assert c.observe(2.0).capacity_changed
    assert gate.eligible(inp)[0].tolist() == [True, True]
    # the Ascend node dies: its flavor leaves the round, cordoned in the placer
    listing.append([h800(0, alive=False), h800(1), ascend(0, alive=False)])
    assert c.observe(3.0).capacity_changed
    ok = gate.eligible(inp)
    assert not ok[0, hz] and ok[0, ulq] and not ok[1].any()
    assert hz_node in placer.cordoned and hz_node in c.down
    only_hz = _inp(pool, (0,))
    only_hz.feasible[0, ulq] = False
    why = gate.explain(only_hz, 0)
    assert why.source == "ray" and "Ray node" in why.reason
    # back under its name (a new Ray node id): the flavor returns
    listing.append([h800(0, alive=False), h800(1), ascend(0, node_id="b0" * 28)])
    assert c.observe(4.0).capacity_changed
    assert gate.eligible(inp)[0].tolist() == [True, True]
    assert hz_node not in placer.cordoned and c.node_ids[hz_node] == "b0" * 28
    assert not c.observe(5.0).capacity_changed
