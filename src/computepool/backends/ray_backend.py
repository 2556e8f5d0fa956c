"""The Ray backend: a ``Cluster`` whose jobs run as Ray actors on a real (multi-node) Ray cluster.

computepool keeps every decision (policy, quotas, residency, placement, metering); Ray runs
the processes. A started job becomes one placement group with a bundle per worker,
``{"accel:<TYPE>": devices}``, each pinned by ``bundle_label_selector`` to the Ray node the
placer chose (``ray.io/node-id``); in bundle ``i`` a ``RayWorker`` actor
(``backends/ray_worker.py``) runs rank ``i`` under the local backend's shim, with the same
worker contract (``backends/worker_env.py``: device variables chosen by the placer, rank, world
size, checkpoint directory, resume file).

The control plane keeps an attempt directory per start, as the local backend does
(``RUNS/<job>/<attempt>/meta.json``, ``rank-R.log`` streamed back from the actor every round,
``rank-R.exit`` with the return code and end time, ``stopping``, ``closed``), so the API's
logs, the store's events and crash recovery read the same files.

Workers outlive the control plane (detached, named actors and groups): after a restart or a
failover the next control plane finds and adopts them (``backends/ray_adopt.py``).

Preemption and cancellation: SIGTERM through the actor, SIGKILL after ``grace_s``, then the
actors are killed and the placement group removed. A Ray node that dies (or an actor that is
lost) fails its jobs' workers: ``Observation.failed``, and the scheduler requeues them (they
restart from their checkpoints); the node is cordoned in the placer until a node of the same
name is alive again, and a flavor whose every node is down leaves the round
(``backends/ray_nodes.py``). At shutdown the workers are left running for the next control plane
to adopt, unless the server stops its jobs on exit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from computepool.backends import attempts as att
from computepool.backends.flavor_gate import LiveFlavorGate
from computepool.backends.plans import placed_starts
from computepool.backends.ray_adopt import (
    NAMESPACE,
    Found,
    actor_name,
    find_attempt,
    group_name,
    kill_detached,
    tag_of,
)
from computepool.backends.ray_fence import deposed, fence_scope, put_epoch, put_fence_at
from computepool.backends.ray_inventory import ACCEL_PREFIX, NODE_ID_LABEL, RayNode
from computepool.backends.ray_nodes import RayNodes
from computepool.backends.ray_worker import RayWorker
from computepool.backends.rendezvous import rank_env
from computepool.backends.shim import write_json
from computepool.backends.worker_env import Launch, job_env
from computepool.model.pool import Pool
from computepool.scheduler.contract import Applied
from computepool.scheduler.interfaces import Observation, Placement, RoundPlan

log = logging.getLogger("computepool.ray")


@dataclass
class RayAttempt:
    """One start of a job's workers on Ray: its placement group, actors and what they said."""

    job: int
    key: str
    number: int
    dir: Path
    flavor: int
    workers: tuple[tuple[int, tuple[int, ...]], ...]
    started_at: float
    pg: Any = None
    ready: Any = None  # ObjectRef of pg.ready()
    placed: bool = False
    actors: list[Any] = field(default_factory=list)
    waits: dict[int, Any] = field(default_factory=dict)  # rank -> ObjectRef of wait()
    starts: dict[int, Any] = field(default_factory=dict)  # rank -> ObjectRef of start()
    exits: dict[int, tuple[int, float]] = field(default_factory=dict)
    log_off: dict[int, int] = field(default_factory=dict)
    log_refs: dict[int, Any] = field(default_factory=dict)
    lost: str | None = None
    stop_reason: str | None = None
    kill_at: float = math.inf
    #: When the workers start (later than ``started_at`` while the job's data is copied in).
    spawn_at: float = 0.0
    spawned: bool = False
    #: Names the detached actors and the group (``meta.json``: ``ray_tag``).
    tag: str = ""


class RayCluster:
    def __init__(
        self,
        pool: Pool,
        nodes: Sequence[RayNode],
        root: Path,
        describe: Callable[[int], Launch],
        grace_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        checkpoint_root: Path | None = None,
        health_every_s: float = 0.5,
        start_timeout_s: float = 120.0,
        list_nodes: Callable[[], list[Mapping[str, Any]]] | None = None,
    ) -> None:
        import ray

        self.ray = ray
        self.pool, self.describe, self.grace_s, self.clock = pool, describe, grace_s, clock
        self.runs = root / "runs"
        self.checkpoints = checkpoint_root or root / "checkpoints"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        by_name = {n.name: n for n in nodes}
        missing = [n.name for n in pool.nodes if n.name not in by_name]
        if missing:
            raise ValueError(f"pool nodes not in the Ray inventory: {', '.join(missing)}")
        ids = [by_name[n.name].node_id for n in pool.nodes]
        self.nodes = RayNodes(pool, ids, list_nodes or ray.nodes, health_every_s)
        self.node_ids, self.down = self.nodes.node_ids, self.nodes.down  # the same objects
        self.start_timeout_s = start_timeout_s
        self.disconnect_on_shutdown = False
        self.running: dict[int, RayAttempt] = {}
        self.stopping: list[RayAttempt] = []
        self.exit_codes: dict[int, int] = {}
        self._worker = ray.remote(RayWorker)
        self.node_index = {n.name: i for i, n in enumerate(pool.nodes)}
        self.flavor_index = {f.name: i for i, f in enumerate(pool.flavors)}
        #: Attempt dir -> what of it ``recover`` found alive on the cluster.
        self._found: dict[Path, Found] = {}
        #: The store's writer epoch of this control plane (None: not fenced); each start
        #: carries it, and a worker whose epoch is older than the cluster's does not run.
        self.epoch: int | None = None
        self.scope = fence_scope(root)
        #: Set by an agent (``publish_lease``): its workers watch its lease in the cluster.
        self.lease_scope: str | None = None

    def fence_epoch(self, epoch: int) -> None:
        """This control plane now holds the store's writer lease at ``epoch``: put it on
        record in the Ray cluster (before recovery reads the attempts) and launch with it.
        A newer epoch on record: RuntimeError (never goes back)."""
        put_epoch(self.scope, epoch)
        self.epoch = epoch

    def publish_lease(self, fence_at: float | None) -> None:
        """An agent's lease (the wall-clock time its workers must be gone by; None: none):
        put on record in the cluster, and every worker started from now on dies with it."""
        self.lease_scope = self.scope
        put_fence_at(self.scope, fence_at)

    def _fence(self) -> tuple[str, int] | None:
        return None if self.epoch is None else (self.scope, self.epoch)

    def bind_placer(self, placer: Any) -> None:
        """Cordon dead nodes in this placer (one with ``cordon``/``uncordon``)."""
        self.nodes.placer = placer

    def wrap_gate(self, inner: Any) -> LiveFlavorGate:
        """The service's round gate, narrowed to flavors with a live Ray node."""
        why = "every Ray node of the flavors it may use is down"
        return LiveFlavorGate(inner, self.nodes.live_flavors, why, "ray")

    # ---- Cluster protocol ------------------------------------------------------------
    def apply(self, plan: RoundPlan) -> Applied | None:
        """Stops, kills, then starts; a start that raised (Ray refused its placement group, a
        record that cannot be written) is undone and returned: the job waits again with why."""
        for j in plan.stop.tolist():
            self._stop(int(j), "preempted")
        for j in plan.kill.tolist():
            self._stop(int(j), "cancelled")
        not_started: dict[int, str] = {}
        for j, f, p, delay in placed_starts(plan, "Ray", every_worker_slotted=True):
            try:
                self._start(j, f, p, plan.now, delay)
            except Exception as exc:  # this start only; the other starts go on
                log.warning("job %s: error starting it", j, exc_info=True)
                r = self.running.get(j)
                if r is not None:
                    with contextlib.suppress(Exception):
                        self._finish(r, "failed", None)
                not_started[j] = f"error starting it: {type(exc).__name__}: {exc}"[:1000]
        return Applied(not_started) if not_started else None

    def observe(self, now: float) -> Observation:
        self._check_nodes()
        done, done_at, err, err_at, failed = [], [], [], [], []
        for r in list(self.running.values()):
            if not r.spawned and r.lost is None and self.clock() >= r.spawn_at:
                self._spawn(r)
            self._collect(r)
            self._pull_logs(r)
            bad = [rc for rc, _ in r.exits.values() if rc != 0]
            end = min(max((t for _, t in r.exits.values()), default=now), now)
            if bad:
                err.append(r.job), err_at.append(end)
                self._finish(r, "failed", bad[0])
            elif r.lost is not None:
                log.warning("workers of job %s lost: %s", r.key, r.lost)
                failed.append(r.job)
                self._finish(r, "lost", None)
            elif len(r.exits) == len(r.workers):
                done.append(r.job), done_at.append(end)
                self._finish(r, "succeeded", 0)
        self._progress_stops()
        obs = Observation.of_exits(
            now, list(zip(done, done_at, strict=True)), list(zip(err, err_at, strict=True)), failed
        )
        changed, self.nodes.changed = self.nodes.changed, False
        return replace(obs, capacity_changed=changed)

    def next_event_time(self) -> float:
        return math.inf

    # ---- starting ----------------------------------------------------------------------
    def _start(self, job: int, flavor: int, p: Placement, now: float, delay: float = 0.0) -> None:
        """The placement group now (it holds the devices); the workers now, or when a data
        transfer's ``delay`` is over (as the local backend does)."""
        from ray.util.placement_group import placement_group

        if deposed(self._fence()):  # cheap, and no group is left held; the workers check too
            raise RuntimeError("a newer writer has taken this Ray cluster over")
        launch = self.describe(job)
        number = att.next_attempt_number(self.runs, launch.key)
        d = self.runs / launch.key / str(number)
        d.mkdir(parents=True)
        fl = self.pool.flavors[flavor]
        tag = uuid.uuid4().hex[:16]
        write_json(
            d / "meta.json",
            {
                "key": launch.key,
                "attempt": number,
                "flavor": fl.name,
                "workers": [[self.pool.nodes[n].name, list(dev)] for n, dev in p.workers],
                "started_at": now,
                "backend": "ray",
                "ray_nodes": [self.node_ids[n] for n, _ in p.workers],
                "ray_tag": tag,
                **({"transfer_s": delay, "spawn_at": now + delay} if delay > 0 else {}),
            },
        )
        r = RayAttempt(
            job, launch.key, number, d, flavor, p.workers, now, spawn_at=now + delay, tag=tag
        )
        self.running[job] = r
        if any(n in self.down for n, _ in p.workers):
            r.lost = "placed on a Ray node that is down"
            return
        res = ACCEL_PREFIX + fl.accelerator
        r.pg = placement_group(
            [{res: float(len(dev))} for _, dev in p.workers],
            strategy="PACK",
            bundle_label_selector=[{NODE_ID_LABEL: self.node_ids[n]} for n, _ in p.workers],
            name=group_name(tag),
            lifetime="detached",
        )
        r.ready = r.pg.ready()
        if delay <= 0:
            self._spawn(r)

    def _spawn(self, r: RayAttempt) -> None:
        """One actor per bundle; each starts its rank and is waited on (all async)."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        launch = self.describe(r.job)
        fl = self.pool.flavors[r.flavor]
        res = ACCEL_PREFIX + fl.accelerator
        r.spawned = True
        ckpt = str(self.checkpoints / launch.key)
        accel = self.pool.accelerators[fl.accelerator]
        nodes = [self.pool.nodes[n].name for n, _ in r.workers]
        master = None  # rank 0's reserve_master(): resolved by Ray before each rank starts
        for rank, (n, dev) in enumerate(r.workers):
            env = job_env(
                launch,
                rank=rank,
                world_size=len(r.workers),
                node=self.pool.nodes[n].name,
                flavor=fl.name,
                accelerator=accel,
                devices=dev,
                checkpoint_dir=ckpt,
                attempt=r.number,
            )
            env.update(rank_env(rank, nodes, accel.stack))
            a = self._worker.options(
                name=actor_name(r.tag, rank),
                namespace=NAMESPACE,
                lifetime="detached",
                num_cpus=0,
                resources={res: float(len(dev))},
                # wait, read_log, stop, finish; and a wait of a control plane that is gone
                max_concurrency=8,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    r.pg, placement_group_bundle_index=rank
                ),
            ).remote()
            if master is None:
                master = a.reserve_master.remote()
            r.starts[rank] = a.start.remote(
                rank, list(launch.argv), env, launch.workdir, master, self._fence(),
                self.lease_scope,
            )  # fmt: skip
            r.actors.append(a)
            r.waits[rank] = a.wait.remote()
            r.log_off[rank] = 0

    # ---- watching ----------------------------------------------------------------------
    def _collect(self, r: RayAttempt) -> None:
        """Return codes of ranks that ended; ``lost`` when an actor (or its node) died."""
        ray = self.ray
        if not r.placed and r.ready is not None:
            ready, _ = ray.wait([r.ready], timeout=0)
            r.placed = bool(ready)
            if not r.placed and self.clock() - r.started_at > self.start_timeout_s:
                r.lost = f"placement group not placed within {self.start_timeout_s:g} s"
        self._record_starts(r)
        if not r.waits:
            return
        refs = list(r.waits.values())
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=True)
        ready_set = set(ready)
        for rank, ref in list(r.waits.items()):
            if ref not in ready_set:
                continue
            del r.waits[rank]
            try:
                rc, at = ray.get(ref)
            except Exception as exc:  # RayActorError, node death, ...
                why = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ""
                r.lost = r.lost or f"rank {rank}: {type(exc).__name__} {why}"
                continue
            if rc is None:
                r.lost = r.lost or f"rank {rank}: worker vanished without an exit code"
                continue
            r.exits[rank] = (int(rc), float(at))
            write_json(r.dir / f"rank-{rank}.exit", {"rc": int(rc), "at": float(at)})

    def _record_starts(self, r: RayAttempt) -> None:
        """``rank-R.ray``: the Ray node and worker pid that run each rank (once known)."""
        if not r.starts:
            return
        ready, _ = self.ray.wait(list(r.starts.values()), num_returns=len(r.starts), timeout=0)
        for rank, ref in list(r.starts.items()):
            if ref in set(ready):
                del r.starts[rank]
                with contextlib.suppress(Exception):
                    write_json(r.dir / f"rank-{rank}.ray", self.ray.get(ref))

    def _append_log(self, r: RayAttempt, rank: int, data: bytes) -> None:
        if data:
            with open(r.dir / f"rank-{rank}.log", "ab") as f:
                f.write(data)
            r.log_off[rank] += len(data)

    def _pull_logs(self, r: RayAttempt) -> None:
        """Bring new log bytes from each rank (one request in flight per rank)."""
        if not r.placed:
            return
        ray = self.ray
        for rank, a in enumerate(r.actors):
            ref = r.log_refs.get(rank)
            if ref is not None:
                ready, _ = ray.wait([ref], timeout=0)
                if not ready:
                    continue
                with contextlib.suppress(Exception):
                    self._append_log(r, rank, ray.get(ref))
            r.log_refs[rank] = a.read_log.remote(r.log_off[rank])

    def _check_nodes(self) -> None:
        """Nodes that died fail their attempts (cordoned; their flavor may leave the round)."""
        for i in self.nodes.check():
            for r in self.running.values():
                if any(n == i for n, _ in r.workers):
                    r.lost = r.lost or f"Ray node {self.pool.nodes[i].name} died"

    # ---- stopping ----------------------------------------------------------------------
    def _stop(self, job: int, reason: str) -> None:
        r = self.running.pop(job, None)
        if r is None:
            return
        att.mark_stopping(r.dir, reason)
        r.stop_reason, r.kill_at = reason, self.clock() + self.grace_s + 2.0
        for a in r.actors:
            a.stop.remote(self.grace_s)
        self.stopping.append(r)

    def _progress_stops(self) -> None:
        still = []
        for r in self.stopping:
            self._collect(r)
            self._pull_logs(r)
            ended = not r.waits or r.lost is not None or not r.placed
            if ended or self.clock() >= r.kill_at:
                self._teardown(r)
                att.mark_closed(r.dir, r.stop_reason or "stopped")
                continue
            still.append(r)
        self.stopping = still

    def _finish(self, r: RayAttempt, outcome: str, rc: int | None) -> None:
        self.running.pop(r.job, None)
        if rc:
            self.exit_codes[r.job] = rc
        self._teardown(r)
        att.mark_closed(r.dir, outcome, rc)

    def _teardown(self, r: RayAttempt, timeout_s: float = 3.0) -> None:
        """Last log bytes (from actors that answer), then kill the actors, drop the group."""
        ray = self.ray
        if r.placed and r.actors:  # actors that still answer clean up their node-local dirs
            refs = {a.finish.remote(r.log_off[k]): k for k, a in enumerate(r.actors)}
            wait_s = timeout_s if r.lost is None else min(timeout_s, 1.0)
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=wait_s)
            for ref in ready:
                with contextlib.suppress(Exception):
                    self._append_log(r, refs[ref], ray.get(ref))
        kill_detached(ray, r.actors, r.pg)
        r.actors, r.waits, r.log_refs = [], {}, {}

    # ---- after a restart, and at exit ------------------------------------------------
    def recover(self) -> list[att.AttemptRecord]:
        """Attempts on disk. A rank with no exit code on disk lives when its detached actor
        is found and answers (the attempt can be adopted); else it is lost (requeued)."""
        out = []
        self._found = {}
        for rec in att.scan(self.runs, wait_for_pid_s=0):
            found = None if rec.closed else find_attempt(self.ray, rec)
            if found is not None:
                self._found[rec.dir] = found
            live = found.answered if found is not None else set()
            ranks = tuple(
                x if x.rc is not None else replace(x, pid=None, alive=x.rank in live, claimed=True)
                for x in rec.ranks
            )
            out.append(replace(rec, ranks=ranks))
        return out

    def placement_of(self, job: int, rec: att.AttemptRecord) -> Placement | None:
        f = self.flavor_index.get(rec.flavor)
        nodes = [self.node_index.get(n) for n, _ in rec.workers]
        if f is None or any(n is None for n in nodes) or rec.dir not in self._found:
            return None
        return Placement(
            job, f, tuple((int(n), dev) for n, (_, dev) in zip(nodes, rec.workers, strict=True))
        )

    def adopt(self, job: int, rec: att.AttemptRecord, placement: Placement) -> None:
        """Drive a running attempt another control plane started: wait on its ranks again,
        stream their logs on from where the files end."""
        found = self._found.pop(rec.dir)
        if any(a is None for a in found.actors):
            raise RuntimeError("some of its Ray actors are gone")
        r = RayAttempt(
            job, rec.key, rec.number, rec.dir, placement.flavor, placement.workers,
            rec.started_at, pg=found.group, placed=True, spawned=True, spawn_at=rec.spawn_at,
            tag=tag_of(rec), actors=list(found.actors),
        )  # fmt: skip
        for x in rec.ranks:
            log_file = rec.dir / f"rank-{x.rank}.log"
            r.log_off[x.rank] = log_file.stat().st_size if log_file.exists() else 0
            if x.rc is not None:
                r.exits[x.rank] = (x.rc, float(x.ended_at or rec.last_seen))
            else:
                r.waits[x.rank] = found.actors[x.rank].wait.remote()
        self.running[job] = r

    def discard(self, rec: att.AttemptRecord, outcome: str) -> None:
        """Kill what is left of an attempt that will not be adopted (its detached actors and
        group), and close it."""
        found = self._found.pop(rec.dir, None)
        if found is not None:
            kill_detached(self.ray, found.actors, found.group)
        att.mark_closed(rec.dir, outcome, rec.rc)

    def shutdown(self, stop_jobs: bool = True) -> None:
        """Stop every worker, or (``stop_jobs`` False) leave them running for the next
        control plane to adopt (their actors and groups are detached)."""
        if not stop_jobs:
            self.running = {}
        for j in list(self.running):
            self._stop(j, "shutdown")
        deadline = time.monotonic() + self.grace_s + 2.0
        while self.stopping and time.monotonic() < deadline:
            self._progress_stops()
            time.sleep(0.05)
        for r in self.stopping:
            self._teardown(r, timeout_s=1.0)
            att.mark_closed(r.dir, r.stop_reason or "stopped")
        self.stopping = []
        if self.disconnect_on_shutdown and self.ray.is_initialized():
            self.ray.shutdown()

    def log_files(self, key: str) -> list[tuple[int, int, Path]]:
        return att.log_files(self.runs, key)
