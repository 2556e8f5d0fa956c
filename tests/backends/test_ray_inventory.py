"""Ray inventory -> pool, and the backend's address handling: pure functions, no cluster."""

from __future__ import annotations

import socket

import pytest

from computepool.backends.ray_inventory import (
    RayAddress,
    RayBackendError,
    check_reachable,
    current_nodes,
    nodes_from_ray,
    parse_backend,
    pool_from_nodes,
)


def rec(node_id, resources, labels=None, alive=True):
    return {"NodeID": node_id, "Alive": alive, "Resources": resources, "Labels": labels or {}}


HEAD = rec("aa" * 28, {"CPU": 1.0, "memory": 2.0**30})


def h800(i, alive=True, node_id=None, **labels):
    lb = {"cpool/region": "cn-ulanqab", "cpool/node": f"ulq-h800-{i}", **labels}
    return rec(node_id or f"{i:02d}" * 28, {"CPU": 1.0, "accel:H800": 4.0}, lb, alive)


def test_pool_from_ray_nodes_uses_resources_and_labels():
    asc = rec(
        "cc" * 28,
        {"CPU": 2.0, "accel:Ascend910B": 8.0, "memory": 4.0 * 2**30},
        {"cpool/region": "cn-hangzhou", "cpool/island": "hz-rack-0"},
    )
    nodes = nodes_from_ray([HEAD, h800(1, **{"cpool/island": "r0"}), asc, h800(0)])
    pool = pool_from_nodes(nodes)
    assert [(n.name, n.region, n.accelerator, n.count, n.island) for n in pool.nodes] == [
        ("ray-cccccccccccc", "cn-hangzhou", "Ascend910B", 8, "hz-rack-0"),
        ("ulq-h800-0", "cn-ulanqab", "H800", 4, "ulq-h800-0"),
        ("ulq-h800-1", "cn-ulanqab", "H800", 4, "r0"),
    ]
    assert pool.summary() == {"cn-hangzhou/Ascend910B": 8, "cn-ulanqab/H800": 8}
    assert pool.nodes[0].memory_mib == 4096 and pool.nodes[0].cpu_milli == 2000
    assert pool.rtt("cn-hangzhou", "cn-ulanqab") > 0


def test_no_accelerator_nodes_is_a_clear_error():
    with pytest.raises(RayBackendError, match=r"no alive Ray node advertises.*accel:<TYPE>"):
        pool_from_nodes(nodes_from_ray([HEAD]))
    with pytest.raises(RayBackendError, match="no alive Ray node"):
        pool_from_nodes(nodes_from_ray([h800(0, alive=False)]))


def test_bad_inventory_names_every_node_and_reason():
    bad = [
        rec("dd" * 28, {"accel:H800": 8.0}),  # no region label
        rec("ee" * 28, {"accel:H800": 2.0, "accel:A800": 2.0}, {"cpool/region": "cn-ulanqab"}),
        rec("ff" * 28, {"accel:H800": 0.5}, {"cpool/region": "cn-ulanqab"}),
    ]
    with pytest.raises(RayBackendError) as e:
        nodes_from_ray(bad)
    assert nodes_from_ray([*bad, h800(0)], strict=False) == nodes_from_ray([h800(0)])
    msg = str(e.value)
    assert "ray-dddddddddddd" in msg and "no region label" in msg and "cpool/region" in msg
    assert "several accelerator types" in msg and "accel:A800" in msg
    assert "0.5 is not a whole count" in msg
    unknown = [
        rec("11" * 28, {"accel:TPU9": 4.0}, {"cpool/region": "cn-ulanqab"}),
        rec("22" * 28, {"accel:H800": 4.0}, {"cpool/region": "mars-1"}),
        h800(0, node_id="33" * 28),
        h800(0, node_id="44" * 28),
    ]
    with pytest.raises(RayBackendError) as e:
        pool_from_nodes(nodes_from_ray(unknown))
    msg = str(e.value)
    assert "unknown accelerator type 'TPU9'" in msg and "unknown region 'mars-1'" in msg
    assert "'ulq-h800-0' is used by several nodes" in msg


def test_a_node_back_under_its_name_replaces_the_dead_one():
    nodes = current_nodes([h800(0, alive=False, node_id="55" * 28), h800(0, node_id="66" * 28)])
    assert [(n.node_id[:2], n.alive) for n in nodes] == [("66", True)]
    nodes = current_nodes([h800(0, node_id="66" * 28), h800(0, alive=False, node_id="55" * 28)])
    assert [(n.node_id[:2], n.alive) for n in nodes] == [("66", True)]


@pytest.mark.parametrize(
    "backend, env, init",
    [
        ("ray://10.1.2.3:10001", {}, "ray://10.1.2.3:10001"),
        ("ray", {"RAY_ADDRESS": "127.0.0.1:6379"}, "127.0.0.1:6379"),
        ("ray", {"RAY_ADDRESS": "ray://head:10001"}, "ray://head:10001"),
    ],
)
def test_backend_addresses(backend, env, init):
    addr = parse_backend(backend, env)
    assert addr.init == init and addr.port in (10001, 6379)


@pytest.mark.parametrize(
    "backend, env, match",
    [
        ("ray", {}, "needs RAY_ADDRESS"),
        ("ray://", {}, "expected HOST:PORT"),
        ("ray://head", {}, "expected HOST:PORT"),
        ("ray://head:port", {}, "expected HOST:PORT"),
        ("ray://head:99999", {}, "out of range"),
        ("ray", {"RAY_ADDRESS": "head:6379/x"}, "RAY_ADDRESS 'head:6379/x'"),
        ("rayy://head:1", {}, "is not 'ray' or"),
    ],
)
def test_bad_backend_addresses(backend, env, match):
    with pytest.raises(RayBackendError, match=match):
        parse_backend(backend, env)


def test_unreachable_cluster_fails_fast_with_the_address():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RayBackendError, match=f"cannot reach a Ray cluster at 127.0.0.1:{port}"):
        check_reachable(RayAddress(f"ray://127.0.0.1:{port}", "127.0.0.1", port), timeout_s=1)


def _serve(tmp_path, *args, env=None):
    from typer.testing import CliRunner

    from computepool.cli.app import app

    return CliRunner().invoke(
        app, ["serve", "--data-dir", str(tmp_path), *args], env=env or {}, catch_exceptions=False
    )


def test_serve_with_a_bad_ray_backend_exits_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _serve(tmp_path, "--backend", f"ray://127.0.0.1:{port}")
    assert r.exit_code == 2 and "cannot reach a Ray cluster at 127.0.0.1" in r.output
    r = _serve(tmp_path, "--backend", "ray")
    assert r.exit_code == 2 and "needs RAY_ADDRESS" in r.output
    r = _serve(tmp_path, "--backend", "ray://h:1", "--config", "automotive-demo")
    assert r.exit_code == 2 and "pool is read from the Ray cluster" in r.output
    r = _serve(tmp_path, "--backend", "slurm")
    assert r.exit_code == 2 and "unknown backend 'slurm'" in r.output


def test_serve_refuses_services_on_the_federated_backend(tmp_path):
    """Replicas would run on the control plane's machine, bound to agents' devices: refused."""
    r = _serve(tmp_path, "--backend", "federated", "--services", "examples/serving/one-chat.yaml")
    assert r.exit_code == 2 and "--services runs services with --backend local or ray" in r.output


def test_after_a_restart_unfinished_ray_attempts_are_lost_and_finished_ones_exited(tmp_path):
    """Attempts whose actors are not found (none was recorded, no connection): a rank with
    no exit code is lost, recovery requeues it; never adopts it."""
    import json

    from computepool.backends import attempts as att
    from computepool.backends.ray_backend import RayCluster
    from computepool.server.recovery import _outcome

    nodes = nodes_from_ray([h800(0)])
    pool = pool_from_nodes(nodes)
    cluster = RayCluster(pool, nodes, tmp_path, describe=lambda j: None, list_nodes=lambda: [])
    for key, exits in (("7", {0: 0}), ("8", {0: 0, 1: 0}), ("9", {0: 0, 1: 3})):
        d = tmp_path / "runs" / key / "1"
        d.mkdir(parents=True)
        meta = {"key": key, "attempt": 1, "flavor": "cn-ulanqab/H800", "started_at": 1.0}
        meta["workers"] = [["ulq-h800-0", [0]], ["ulq-h800-0", [1]]]
        (d / "meta.json").write_text(json.dumps(meta))
        for rank, rc in exits.items():
            (d / f"rank-{rank}.exit").write_text(json.dumps({"rc": rc, "at": 2.0}))
    recs = {r.key: r for r in cluster.recover()}
    assert recs["7"].state == att.LOST and _outcome(recs["7"]) == "requeue"
    assert recs["8"].state == att.EXITED and _outcome(recs["8"]) == "succeeded"
    assert _outcome(recs["9"]) == "failed" and recs["9"].rc == 3
    assert cluster.placement_of(0, recs["7"]) is None
    cluster.discard(recs["7"], "lost")
    assert json.loads((tmp_path / "runs" / "7" / "1" / "closed").read_text())["outcome"] == "lost"


def test_a_ray_start_that_raises_is_reported_to_the_loop_and_the_others_are_tried(tmp_path):
    """A start that fails (here: its launch cannot be read) is undone and returned as not
    started, for the loop's next observation; it no longer stops the round's other starts."""
    import numpy as np

    from computepool.backends.ray_backend import RayCluster
    from computepool.scheduler.contract import Applied
    from computepool.scheduler.interfaces import Placement, RoundPlan

    nodes = nodes_from_ray([h800(0)])
    pool = pool_from_nodes(nodes)
    asked = []

    def describe(j):
        asked.append(j)
        raise OSError(28, "No space left on device")

    cluster = RayCluster(pool, nodes, tmp_path, describe=describe, list_nodes=lambda: [])
    plan = RoundPlan(
        now=1.0,
        round_seconds=1.0,
        start=np.array([0, 1]),
        start_flavor=np.array([0, 0]),
        placements=(Placement(0, 0, ((0, (0,)),)), Placement(1, 0, ((0, (1,)),))),
    )
    out = cluster.apply(plan)
    assert isinstance(out, Applied) and sorted(out.start_failed) == [0, 1]
    assert "OSError" in out.start_failed[0] and "No space left" in out.start_failed[0]
    assert asked == [0, 1] and cluster.running == {}
