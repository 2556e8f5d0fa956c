"""The Ray cluster as a pool: addresses, node inventory and the ``Pool`` built from it.

A Ray node joins the pool by advertising its accelerators as a custom resource and its place
as node labels (``ray start --resources='{"accel:H800": 8}'
--labels=cpool/region=cn-ulanqab,cpool/island=ulq-rack-0,cpool/node=ulq-h800-0``):

| what | where | required |
| --- | --- | --- |
| accelerator type and count | resource ``accel:<TYPE>`` (a catalog type) | yes; nodes without one (the head) run no jobs |
| region | label ``cpool/region`` (a catalog region) | yes |
| topology island | label ``cpool/island`` | no (default: the node's own name) |
| node name | label ``cpool/node`` | no (default: ``ray-`` + the first 12 hex of its node id) |

The pool is read from the cluster, never configured a second time; the simulator builds the
same ``Pool`` from the same inventory (``pool_from_nodes``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from computepool.catalog.catalog import Catalog
from computepool.catalog.node_pool import node_list_problems, pool_of_nodes
from computepool.model.pool import Node, Pool

ACCEL_PREFIX = "accel:"
LABEL_REGION = "cpool/region"
LABEL_ISLAND = "cpool/island"
LABEL_NODE = "cpool/node"
NODE_ID_LABEL = "ray.io/node-id"


class RayBackendError(ValueError):
    """The Ray backend cannot run: bad address, unreachable cluster, unusable inventory."""


@dataclass(frozen=True)
class RayNode:
    """One Ray node that offers accelerators to the pool."""

    node_id: str
    name: str
    region: str
    island: str
    accelerator: str
    count: int
    alive: bool = True
    cpu: float = 0.0
    memory_mib: int = 0


@dataclass(frozen=True)
class RayAddress:
    """Where the control plane connects: ``init`` goes to ``ray.init``, host/port are checked."""

    init: str
    host: str
    port: int


def parse_backend(backend: str, environ: Mapping[str, str]) -> RayAddress:
    """``ray://HOST:PORT`` (Ray Client), or ``ray`` with ``RAY_ADDRESS`` (``HOST:PORT`` of the
    head's GCS, or ``ray://HOST:PORT``)."""
    if backend == "ray":
        text = environ.get("RAY_ADDRESS", "").strip()
        if not text:
            raise RayBackendError(
                "--backend ray needs RAY_ADDRESS (e.g. 127.0.0.1:6379), or give "
                "--backend ray://HOST:PORT"
            )
        source = "RAY_ADDRESS"
    elif backend.startswith("ray://"):
        text, source = backend, "--backend"
    else:
        raise RayBackendError(f"backend {backend!r} is not 'ray' or 'ray://HOST:PORT'")
    rest = text.removeprefix("ray://")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or "/" in rest or not port_text.isdigit():
        raise RayBackendError(
            f"{source} {text!r}: expected HOST:PORT or ray://HOST:PORT, e.g. ray://127.0.0.1:10001"
        )
    port = int(port_text)
    if not 0 < port < 65536:
        raise RayBackendError(f"{source} {text!r}: port {port} is out of range")
    return RayAddress(text, host.strip("[]"), port)


def check_reachable(addr: RayAddress, timeout_s: float = 3.0) -> None:
    """Fail fast, with the address, when nothing listens there (``ray.init`` retries for long)."""
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout_s):
            return
    except OSError as exc:
        raise RayBackendError(
            f"cannot reach a Ray cluster at {addr.host}:{addr.port} ({exc.strerror or exc}); "
            "start one (`cpool ray up --demo`, or `ray start --head`) or fix the address"
        ) from None


def _accelerator(
    resources: Mapping[str, float], where: str, problems: list[str]
) -> tuple[str | None, int]:
    found = [
        (k[len(ACCEL_PREFIX) :], v) for k, v in resources.items() if k.startswith(ACCEL_PREFIX)
    ]
    if len(found) > 1:
        names = ", ".join(ACCEL_PREFIX + k for k, _ in found)
        problems.append(f"{where}: advertises several accelerator types ({names}); one per node")
        return None, 0
    accel, count = found[0]
    if count != int(count) or count < 1:
        problems.append(f"{where}: {ACCEL_PREFIX}{accel} = {count:g} is not a whole count >= 1")
        return None, 0
    return accel, int(count)


def nodes_from_ray(raw: Sequence[Mapping[str, Any]], strict: bool = True) -> list[RayNode]:
    """Accelerator nodes from ``ray.nodes()`` records (alive or not); every problem at once
    (``strict``), or the usable nodes only (a running server watching its nodes)."""
    out: list[RayNode] = []
    problems: list[str] = []
    for rec in raw:
        resources: Mapping[str, float] = rec.get("Resources") or {}
        if not any(k.startswith(ACCEL_PREFIX) for k in resources):
            continue
        labels: Mapping[str, str] = rec.get("Labels") or {}
        node_id = str(rec.get("NodeID", ""))
        name = labels.get(LABEL_NODE) or f"ray-{node_id[:12]}"
        where = f"Ray node {name} ({node_id[:12]})"
        accel, count = _accelerator(resources, where, problems)
        region = labels.get(LABEL_REGION, "")
        if not region:
            problems.append(
                f"{where}: no region label; start it with --labels={LABEL_REGION}=<region>"
            )
        if accel is None or not region:
            continue
        out.append(
            RayNode(
                node_id=node_id,
                name=name,
                region=region,
                island=labels.get(LABEL_ISLAND) or name,
                accelerator=accel,
                count=count,
                alive=bool(rec.get("Alive", True)),
                cpu=float(resources.get("CPU", 0.0)),
                memory_mib=int(float(resources.get("memory", 0.0)) // 2**20),
            )
        )
    if problems and strict:
        raise RayBackendError("unusable Ray inventory:\n  " + "\n  ".join(problems))
    return out


def current_nodes(raw: Sequence[Mapping[str, Any]], strict: bool = True) -> list[RayNode]:
    """The pool's nodes now: alive ones, and of a name seen several times (a node that died and
    came back) only the alive one, else the last."""
    by_name: dict[str, RayNode] = {}
    for n in nodes_from_ray(raw, strict):
        old = by_name.get(n.name)
        if old is None or n.alive or not old.alive:
            by_name[n.name] = n
    return list(by_name.values())


def pool_from_nodes(
    nodes: Sequence[RayNode], catalog: Catalog | None = None, name: str = "ray"
) -> Pool:
    """The ``Pool`` of the alive accelerator nodes, in a stable order (region, type, name)."""
    live = sorted((n for n in nodes if n.alive), key=lambda n: (n.region, n.accelerator, n.name))
    if not live:
        raise RayBackendError(
            "no alive Ray node advertises an accelerator resource (accel:<TYPE>); start worker "
            "nodes with e.g. --resources='{\"accel:H100\": 8}' "
            f"--labels={LABEL_REGION}=ap-singapore (see `cpool ray up --demo`)"
        )
    cat = catalog or Catalog.load()
    nodes = [
        Node(n.name, n.region, n.accelerator, n.count, n.island, int(n.cpu * 1000), n.memory_mib)
        for n in live
    ]
    problems = node_list_problems(nodes, cat, what="Ray node")
    if problems:
        raise RayBackendError("unusable Ray inventory:\n  " + "\n  ".join(problems))
    desc = f"read from a Ray cluster: {len(live)} accelerator nodes"
    return pool_of_nodes(name, nodes, cat, desc)


# ---- connecting ------------------------------------------------------------------------
def connect(addr: RayAddress) -> bool:
    """``ray.init`` at the address (after a quick reachability check), quietly; False when
    this process was connected already (then it is not ours to disconnect)."""
    import ray

    check_reachable(addr)
    if ray.is_initialized():
        return False
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    _init_with_retries(addr.init)
    if main:  # ray.init makes SIGTERM exit at once; the server shuts down on it as it did
        signal.signal(signal.SIGTERM, before)
    return True


#: How often a ``ray://`` connection is tried when Ray Client's proxy fails to start the
#: per-client server (it gives the head's runtime-env agent a few seconds, which a loaded or
#: just-started head may not meet).
CLIENT_TRIES = 4


def _init_with_retries(address: str, tries: int = CLIENT_TRIES, wait_s: float = 2.0) -> None:
    import ray

    for attempt in range(1, tries + 1):
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            return
        except (ConnectionError, RuntimeError) as exc:
            transient = address.startswith("ray://") and "client server failed" in str(exc)
            if not transient or attempt == tries:
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()
            time.sleep(wait_s * attempt)
