"""Rendezvous for a gang: the variables distributed-training stacks read to find each other.

Every job's workers get, on top of ``CPOOL_*``, what ``torchrun`` would set for its workers
(``torch.distributed``'s ``env://`` init, DeepSpeed and Megatron read the same names):
``MASTER_ADDR`` / ``MASTER_PORT`` (rank 0's host and a port the pool reserved there for the
attempt), ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``NODE_RANK`` and
``GROUP_RANK``; on a ``cann`` (Ascend) flavor also ``RANK_ID`` / ``RANK_SIZE`` (read by
MindSpore and older Ascend scripts) and ``RANK_TABLE_FILE``: HCCL's rank table (``hccl_rank_table``,
written per attempt). One worker is one rank; a node is a pool node of the placement, numbered
in the order of first appearance.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

#: Names a worker's environment gets from ``rendezvous_env`` (documented in docs/live.md).
RENDEZVOUS_VARS = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
)
#: Tries before ``reserve_port`` gives up finding a port not already handed out.
PORT_TRIES = 64


@dataclass(frozen=True)
class Master:
    """Where rank 0 listens for the rendezvous: its host's address and the reserved port."""

    addr: str
    port: int


@dataclass(frozen=True)
class RankPlace:
    """Where one rank sits among the gang's nodes."""

    local_rank: int
    local_world_size: int
    node_rank: int


def rank_places(nodes: Sequence[str]) -> list[RankPlace]:
    """For ranks placed on ``nodes`` (rank -> node name): each rank's place. Ranks on one node
    are numbered in rank order; nodes in the order their first rank appears."""
    node_rank: dict[str, int] = {}
    count: dict[str, int] = {}
    local: list[int] = []
    for n in nodes:
        node_rank.setdefault(n, len(node_rank))
        local.append(count.get(n, 0))
        count[n] = local[-1] + 1
    return [RankPlace(lr, count[n], node_rank[n]) for n, lr in zip(nodes, local, strict=True)]


def master_env(master: Master) -> dict[str, str]:
    """``MASTER_ADDR`` and ``MASTER_PORT``."""
    if not 0 < master.port < 65536:
        raise ValueError(f"master port {master.port} is not a TCP port")
    return {"MASTER_ADDR": master.addr, "MASTER_PORT": str(master.port)}


def rendezvous_env(rank: int, nodes: Sequence[str], master: Master, stack: str) -> dict[str, str]:
    """The rendezvous variables of rank ``rank`` of a gang placed on ``nodes``."""
    return {**master_env(master), **rank_env(rank, nodes, stack)}


def rank_env(rank: int, nodes: Sequence[str], stack: str) -> dict[str, str]:
    """The rendezvous variables of rank ``rank`` but where the master is."""
    if not 0 <= rank < len(nodes):
        raise ValueError(f"rank {rank} is outside a gang of {len(nodes)}")
    place = rank_places(nodes)[rank]
    env = {
        "RANK": str(rank),
        "WORLD_SIZE": str(len(nodes)),
        "LOCAL_RANK": str(place.local_rank),
        "LOCAL_WORLD_SIZE": str(place.local_world_size),
        "NODE_RANK": str(place.node_rank),
        "GROUP_RANK": str(place.node_rank),
    }
    if stack == "cann":
        env.update({"RANK_ID": str(rank), "RANK_SIZE": str(len(nodes))})
    return env


def hccl_rank_table(
    nodes: Sequence[str], devices: Sequence[Sequence[int]], hosts: Mapping[str, str] | None = None
) -> dict:
    """HCCL's rank table (format 1.0) of a gang: per server (``hosts[node]``, else the node's
    name), its devices with one HCCL rank each, numbered over the gang in rank order (worker
    0's devices first). The NPUs' own network addresses (``device_ip``, what ``hccn_tool``
    reports) are not known to the pool and are not written: HCCL across servers needs them."""
    if len(nodes) != len(devices):
        raise ValueError(f"{len(nodes)} nodes for {len(devices)} device lists")
    hosts = hosts or {}
    servers: dict[str, list[dict[str, str]]] = {}
    rank = 0
    for node, devs in zip(nodes, devices, strict=True):
        for d in devs:
            servers.setdefault(node, []).append({"device_id": str(d), "rank_id": str(rank)})
            rank += 1
    return {
        "version": "1.0",
        "server_count": str(len(servers)),
        "server_list": [
            {"server_id": hosts.get(n, n), "device": devs} for n, devs in servers.items()
        ],
        "status": "completed",
    }


def reserve_port(host: str = "", taken: Collection[int] = ()) -> int:
    """A TCP port free on ``host`` (default: every address) now and not in ``taken`` (the ports the pool's running
    attempts hold): bound, read and released, so the kernel's ephemeral allocator picks it.
    The job binds it moments later; ``taken`` keeps two of the pool's attempts apart."""
    for _ in range(PORT_TRIES):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise OSError(f"no free TCP port on {host or 'this host'} after {PORT_TRIES} tries")


def reserve_ports(n: int = 1, host: str = "") -> int:
    """The first of ``n`` consecutive TCP ports free on ``host`` now (as ``reserve_port``)."""
    for _ in range(PORT_TRIES):
        p = reserve_port(host)
        if n == 1:
            return p
        if p + n > 65536:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for q in range(p + 1, p + n):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind((host, q))
            return p
        except OSError:
            continue
    raise OSError(f"no {n} consecutive free TCP ports on {host or 'this host'}")
