"""Service replicas on the Ray backend: each one an actor on the node that owns its devices.

``cpool serve --backend ray --services FILE`` binds every replica to device slots of the pool's
placer, as jobs are; the pool's nodes are Ray nodes, so the replica must run on that node.
``RayReplicas`` is the serving ``Supervisor``'s runner there: per replica a one-bundle placement
group ``{"accel:<TYPE>": devices}`` pinned by ``bundle_label_selector`` to the bound node's Ray
node id (as a job's worker is, ``backends/ray_backend.py``), and in it a ``RayWorker`` actor
(``backends/ray_worker.py``) that reports its node's address, a free port there and its
interpreter, then runs the engine's command under the shim (``--watch-parent``: the command dies
with the actor) with the devices' visibility variables on top of the node's environment. The
Supervisor's health checks, endpoints (``http://HOST:PORT``), metrics scraping, restarts and
``scale_to`` work on the replica's host and port unchanged; a replica stopped for good has its
actor killed and its group removed (its Ray resources freed), and its log is copied back into
the services' log directory.

The actors and groups belong to the control plane's Ray job (not detached): services are not
adopted after a restart, so a control plane that dies takes its replicas with it rather than
leaving their devices held.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from computepool.backends.ray_adopt import NAMESPACE, kill_detached
from computepool.backends.ray_inventory import NODE_ID_LABEL
from computepool.backends.ray_worker import RayWorker


@dataclass
class RayProcess:
    """A replica's handle: its group and actor, and the actor's ``wait`` of the command."""

    ray: Any
    group: Any
    actor: Any
    tag: str
    amount: float
    wait: Any = None
    pid: int = 0  # the actor's process
    node_id: str = ""  # the Ray node it runs on
    start: Any = None  # ObjectRef of the actor's start, until it answered
    rc: int | None = None
    used: bool = False

    def poll(self) -> int | None:
        """The command's return code once it ended (-1: its actor or node was lost, or its
        start failed); None while it runs or starts. Never blocks."""
        if self.rc is not None or self.wait is None:
            return self.rc
        if self.start is not None:  # where it started (the actor's node and pid), once known
            ready, _ = self.ray.wait([self.start], timeout=0)
            if ready:
                try:
                    info = self.ray.get(self.start)
                    self.pid, self.node_id = int(info["pid"]), str(info["node_id"])
                except Exception:  # the actor died before it could start the command
                    self.rc = -1
                    return self.rc
                self.start = None
        ready, _ = self.ray.wait([self.wait], timeout=0)
        if not ready:
            return None
        try:
            rc, _ = self.ray.get(self.wait)
        except Exception:  # RayActorError: the actor or its node died
            rc = None
        self.rc = -1 if rc is None else int(rc)
        return self.rc


class RayReplicas:
    """The runner of one service's replicas (``serving.supervisor.Runner``) on a Ray cluster."""

    def __init__(
        self,
        ray: Any,
        node_ids: Sequence[str],
        resource: str,
        devices: float,
        name: str = "service",
        log_dir: Path | None = None,
        ports: int = 1,
        timeout_s: float = 60.0,
    ) -> None:
        self.ray, self.node_ids, self.resource = ray, list(node_ids), resource
        #: Accelerators one replica holds (a fraction for a packed replica).
        self.devices = devices
        self.name, self.log_dir, self.ports, self.timeout_s = name, log_dir, ports, timeout_s
        self._worker = ray.remote(RayWorker)

    def _amount(self, r: Any) -> float:
        return self.devices if self.devices < 1 else float(len(r.devices) or self.devices)

    def _actor(self, group: Any, tag: str, amount: float, n: int) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return self._worker.options(
            name=f"cpool-svc-{tag}-{n}",
            namespace=NAMESPACE,
            num_cpus=0,
            resources={self.resource: amount},
            max_concurrency=8,  # wait, stop, finish
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=0
            ),
        ).remote()

    def place(self, r: Any) -> bool:
        """A group on ``r``'s bound node and an actor in it; ``r``'s host, port and
        interpreter from the actor. False (nothing held) when Ray cannot place it in time."""
        from ray.util.placement_group import placement_group

        if not 0 <= r.node < len(self.node_ids):
            raise ValueError(f"service {self.name!r}: a replica on the Ray backend needs a node")
        tag, amount = uuid.uuid4().hex[:16], self._amount(r)
        group = placement_group(
            [{self.resource: amount}],
            strategy="PACK",
            bundle_label_selector=[{NODE_ID_LABEL: self.node_ids[r.node]}],
            name=f"cpool-svc-{tag}",
        )
        actor = None
        try:
            ready, _ = self.ray.wait([group.ready()], timeout=self.timeout_s)
            if not ready:
                raise TimeoutError(f"placement group not placed within {self.timeout_s:g} s")
            actor = self._actor(group, tag, amount, 0)
            where = self.ray.get(actor.where.remote(self.ports), timeout=self.timeout_s)
        except Exception:
            kill_detached(self.ray, [actor], group)
            return False
        r.host, r.port, r.python = str(where["host"]), int(where["port"]), str(where["python"])
        r.proc = RayProcess(self.ray, group, actor, tag, amount)
        return True

    def spawn(self, r: Any, argv: list[str], env: dict[str, str]) -> RayProcess:
        """Start the command in ``r``'s actor (asynchronously); a restart gets a fresh actor
        in the same group (a ``RayWorker`` runs one start). A start that fails reads as an
        exit (-1)."""
        p: RayProcess = r.proc
        if p.used:
            with contextlib.suppress(Exception):
                self.ray.kill(p.actor, no_restart=True)
            p.actor = self._actor(p.group, p.tag, p.amount, r.restarts + 1)
        p.used, p.rc, p.pid, p.node_id = True, None, 0, ""
        env = {**env, "CPOOL_JOB_ID": f"svc-{self.name}"[:64], "CPOOL_ATTEMPT": "0"}
        # not waited on: a restart on a node that is gone must not hold up the round (the
        # replica then fails its health checks and is restarted again after its allowance)
        p.start = p.actor.start.remote(0, argv, env, None)
        p.wait = p.actor.wait.remote()
        return p

    def terminate(self, r: Any, grace_s: float) -> None:
        """SIGTERM the command through its actor, SIGKILL after ``grace_s``; its log is
        copied back."""
        p: RayProcess | None = r.proc
        if p is None or not p.used:
            return
        with contextlib.suppress(Exception):
            p.actor.stop.remote(grace_s)
            if p.wait is not None:
                self.ray.wait([p.wait], timeout=grace_s + 2.0)
            self._save_log(r, self.ray.get(p.actor.finish.remote(0), timeout=5.0))
        p.rc = -15 if p.rc is None else p.rc

    def close(self, r: Any) -> None:
        """Kill the actor and remove the group: the replica's Ray resources are free."""
        p: RayProcess | None = r.proc
        if p is not None:
            kill_detached(self.ray, [p.actor], p.group)

    def _save_log(self, r: Any, data: bytes) -> None:
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        p: RayProcess = r.proc
        with (self.log_dir / f"{self.name}-{r.host}-{r.port}.log").open("ab") as f:
            f.write(data)
            f.write(f"--- cpool: stopped at {time.time():.3f} on Ray node {p.node_id}\n".encode())


def ray_runners(cluster: Any, log_dir: Path | None = None):
    """``make(service, flavor, devices per replica, ports per replica)``: the runner of a
    service's replicas on ``cluster`` (a ``RayCluster``), for ``ProcessReplicas.bind_runner``."""
    from computepool.backends.ray_inventory import ACCEL_PREFIX

    def make(name: str, flavor: int, devices: float, ports: int = 1) -> RayReplicas:
        resource = ACCEL_PREFIX + cluster.pool.flavors[flavor].accelerator
        return RayReplicas(cluster.ray, cluster.node_ids, resource, devices, name, log_dir, ports)

    return make
