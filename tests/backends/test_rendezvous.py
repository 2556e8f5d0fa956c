"""Rendezvous variables: what each rank of a gang is told, the port the pool reserves for it,
and the sandbox rule that lets a gang's ranks reach each other."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from computepool.backends import attempts as att
from computepool.backends.rendezvous import (
    Master,
    hccl_rank_table,
    rank_places,
    rendezvous_env,
    reserve_port,
)
from computepool.backends.sandbox import SandboxConfig, bwrap_argv
from computepool.scheduler.loop import COMPLETED
from tests.backends.test_local import Live, _launch_by_hand

PY = sys.executable
DUMP = (
    "import json, os; keys = ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK', "
    "'LOCAL_WORLD_SIZE', 'NODE_RANK', 'GROUP_RANK', 'RANK_ID', 'RANK_SIZE', 'CPOOL_NODE', "
    "'CPOOL_WORKER_RANK', 'CUDA_VISIBLE_DEVICES', 'ASCEND_RT_VISIBLE_DEVICES', "
    "'RANK_TABLE_FILE'); "
    "print(json.dumps({k: os.environ[k] for k in keys if k in os.environ}))"
)


def test_ranks_are_numbered_per_node_in_order_of_first_appearance():
    places = rank_places(["b", "a", "b", "c", "a"])
    assert [(p.local_rank, p.local_world_size, p.node_rank) for p in places] == [
        (0, 2, 0),
        (0, 2, 1),
        (1, 2, 0),
        (0, 1, 2),
        (1, 2, 1),
    ]


def test_rendezvous_env_is_what_torchrun_sets_and_ascend_gets_rank_id():
    env = rendezvous_env(2, ["n1", "n1", "n2"], Master("10.0.0.5", 29400), "cuda")
    assert env == {
        "MASTER_ADDR": "10.0.0.5",
        "MASTER_PORT": "29400",
        "RANK": "2",
        "WORLD_SIZE": "3",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "NODE_RANK": "1",
        "GROUP_RANK": "1",
    }
    npu = rendezvous_env(1, ["n1", "n1"], Master("h", 1), "cann")
    assert npu["RANK_ID"] == "1" and npu["RANK_SIZE"] == "2" and npu["LOCAL_RANK"] == "1"
    with pytest.raises(ValueError, match="outside a gang of 2"):
        rendezvous_env(2, ["a", "b"], Master("h", 1), "cuda")
    with pytest.raises(ValueError, match="not a TCP port"):
        rendezvous_env(0, ["a"], Master("h", 70000), "cuda")


def test_hccl_rank_table_numbers_devices_over_the_gang():
    t = hccl_rank_table(["n1", "n2", "n1"], [(0, 1), (4,), (2,)], {"n1": "10.0.0.1"})
    assert t["server_count"] == "2" and t["status"] == "completed"
    (s1, s2) = t["server_list"]
    assert s1["server_id"] == "10.0.0.1" and s2["server_id"] == "n2"
    assert [(d["device_id"], d["rank_id"]) for d in s1["device"]] == [("0", "0"), ("1", "1"),
                                                                       ("2", "3")]  # fmt: skip
    assert s2["device"] == [{"device_id": "4", "rank_id": "2"}]
    with pytest.raises(ValueError, match="2 nodes for 1 device lists"):
        hccl_rank_table(["a", "b"], [(0,)])


def test_a_reserved_port_is_free_and_never_one_already_handed_out():
    first = reserve_port()
    with socket.socket() as s:
        s.bind(("", first))  # free: the job can bind it
    seen = {first}
    for _ in range(20):
        p = reserve_port(taken=seen)
        assert p not in seen
        seen.add(p)


def test_a_gang_of_several_workers_shares_the_network_a_lone_worker_does_not():
    cfg = SandboxConfig()
    lone = bwrap_argv(cfg, 200_001, {}, ["x"], work=None, checkpoint=None)
    gang = bwrap_argv(cfg, 200_001, {}, ["x"], work=None, checkpoint=None, share_network=True)
    assert "--unshare-net" in lone and "--unshare-net" not in gang


def _envs(live: Live, key: str) -> list[dict]:
    return [
        json.loads(p.read_text().strip().splitlines()[-1])
        for _, _, p in att.log_files(live.root / "runs", key)
    ]


def test_every_rank_of_a_live_gang_gets_the_rendezvous_and_its_own_devices(tmp_path):
    live = Live(tmp_path)
    try:
        a = live.submit([PY, "-c", DUMP], workers=2, per=4, accel="N", key="two-nodes")
        b = live.submit([PY, "-c", DUMP], workers=2, per=4, accel="ASC", key="one-node")
        c = live.submit([PY, "-c", DUMP], workers=1, per=1, accel="N", key="alone")
        live.run_until(lambda: all(live.state(j) == COMPLETED for j in (a, b, c)))
    finally:
        live.cleanup()
    ea, eb, (ec,) = _envs(live, "two-nodes"), _envs(live, "one-node"), _envs(live, "alone")
    # two ranks on two nodes: node ranks 0 and 1, each the only rank of its node
    assert [(e["RANK"], e["NODE_RANK"], e["LOCAL_RANK"]) for e in ea] == [
        ("0", "0", "0"),
        ("1", "1", "0"),
    ]
    assert ea[0]["CPOOL_NODE"] != ea[1]["CPOOL_NODE"]
    assert all(e["WORLD_SIZE"] == "2" and e["LOCAL_WORLD_SIZE"] == "1" for e in ea)
    # two ranks on the one Ascend node: local ranks 0 and 1, distinct devices
    assert [(e["LOCAL_RANK"], e["NODE_RANK"], e["RANK_ID"]) for e in eb] == [
        ("0", "0", "0"),
        ("1", "0", "1"),
    ]
    assert all(e["LOCAL_WORLD_SIZE"] == "2" and e["RANK_SIZE"] == "2" for e in eb)
    devs = [set(e["ASCEND_RT_VISIBLE_DEVICES"].split(",")) for e in eb]
    assert len(devs[0]) == len(devs[1]) == 4 and not devs[0] & devs[1]
    assert "RANK_ID" not in ea[0] and "RANK_TABLE_FILE" not in ea[0]  # cuda: no Ascend names
    # HCCL's rank table: one file per attempt, each device one HCCL rank, worker 0's first
    (table_file,) = {e["RANK_TABLE_FILE"] for e in eb}
    table = json.loads(Path(table_file).read_text())
    assert table["version"] == "1.0" and table["server_count"] == "1"
    (server,) = table["server_list"]
    ids = [d["device_id"] for d in server["device"]]
    assert set(ids[:4]) == devs[0] and set(ids[4:]) == devs[1]
    assert [d["rank_id"] for d in server["device"]] == [str(i) for i in range(8)]
    # one master per job, the same for all its ranks; jobs' ports differ; recorded per attempt
    ports = {k: {e["MASTER_PORT"] for e in es} for k, es in (("a", ea), ("b", eb), ("c", [ec]))}
    assert all(len(p) == 1 for p in ports.values())
    assert len({next(iter(p)) for p in ports.values()}) == 3
    assert all(e["MASTER_ADDR"] == "127.0.0.1" for e in (*ea, *eb, ec))
    rec = att.read_attempt(tmp_path / "runs" / "two-nodes" / "1")
    assert rec is not None and str(rec.master_port) == ea[0]["MASTER_PORT"]


def test_ranks_started_after_a_restart_get_the_attempts_recorded_port(tmp_path):
    marks = tmp_path / "marks"
    argv = [
        PY,
        "-c",
        f"import os; open({str(marks)!r}, 'a').write(os.environ.get('MASTER_PORT', '-') + ' ')",
    ]
    d = _launch_by_hand(tmp_path, "cut", 2, [], argv)
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "master_port": 34567}))
    fresh = Live(tmp_path)
    try:
        (rec,) = fresh.cluster.recover()
        assert rec.master_port == 34567 and rec.unclaimed == [0, 1]
        idx = fresh.adopt(rec, argv, "cut", workers=2, per=1, accel="N")
        fresh.run_until(lambda: fresh.state(idx) == COMPLETED)
    finally:
        fresh.cleanup()
    assert marks.read_text().split() == ["34567", "34567"]


def test_a_recorded_port_that_is_not_a_port_makes_the_record_unbelieved(tmp_path):
    d = _launch_by_hand(tmp_path, "bad", 1, [], [])
    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, "master_port": 70000}))
    rec = att.read_attempt(d)
    assert rec is not None and "master_port" in rec.problem
