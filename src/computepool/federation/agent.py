"""``cpool agent``: one per cluster. It runs a backend for its cluster's nodes (the local
backend, or a Ray cluster's ``RayCluster`` with ``cpool agent --backend ray``), registers with the control plane, renews its lease with every heartbeat, starts and stops
workers as told, and reports their state, exits and log tails.

Fencing: the agent's lease runs from the moment it *sent* its last renewed heartbeat, so it
ends earlier on the agent's clock than on the control plane's. When a renewal has not come
back by ``valid_until - 2 x safety`` the agent stops every worker and gives up its session;
its fence process (``fence.py``) kills whatever is left at ``valid_until - safety``, even when
the agent is stopped or dead. The control plane requeues the cluster's jobs only when the
lease has ended on its side, after that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from computepool.admission.rulebook import Rulebook
from computepool.backends.local import LocalCluster
from computepool.backends.sandbox import SandboxStatus
from computepool.backends.worker_env import Launch, inherited_env
from computepool.federation.fence import kill_all, write_fence_at
from computepool.federation.protocol import (
    LOG_CHUNK_MAX,
    REPORTS_MAX,
    Health,
    HeartbeatOut,
    Inventory,
    LogChunk,
    NodeIn,
    RegionIn,
    RegisterOut,
    Report,
    StartCmd,
)
from computepool.federation.residency import recheck
from computepool.model.pool import Flavor, Pool
from computepool.scheduler.interfaces import Cluster, Placement, RoundPlan

log = logging.getLogger("computepool.agent")

#: Log bytes sent in one heartbeat, all attempts together (the body stays well below 1 MiB).
LOG_BYTES_PER_BEAT = 256 * 1024


def inventory_of(pool: Pool) -> Inventory:
    regions = sorted({n.region for n in pool.nodes})
    return Inventory(
        regions=[RegionIn(name=r, jurisdiction=pool.regions[r].jurisdiction) for r in regions],
        nodes=[
            NodeIn(
                name=n.name,
                region=n.region,
                accelerator=n.accelerator,
                count=n.count,
                island=n.island,
            )
            for n in pool.nodes
        ],
    )


@dataclass
class AgentConfig:
    url: str
    token: str
    cluster: str
    pool: Pool
    data_dir: Path
    rulebook: Rulebook
    #: Region name -> jurisdiction: the agent's own data (its pool and the shipped catalog).
    regions: Mapping[str, str]
    grace_s: float = 10.0
    sandbox: SandboxStatus | None = None
    #: Where workers keep checkpoints (shared with other clusters so a requeued job resumes).
    checkpoint_dir: Path | None = None
    #: Long-poll wait per heartbeat (seconds).
    wait_s: float = 0.5
    #: Part of the lease kept as the safety margin (at least ``min_safety_s``).
    safety_frac: float = 0.2
    min_safety_s: float = 0.3


@dataclass
class Tracked:
    """One attempt the control plane gave this agent."""

    id: str
    idx: int
    dir: Path | None = None
    stopping: bool = False
    #: The control plane has heard that it runs.
    announced: bool = False
    #: Bytes of each rank's log file read, and the control plane's count of bytes sent.
    read: dict[int, int] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)


#: Makes the backend of an agent's cluster: (pool, data dir, describe, grace_s) -> cluster
#: (``open_ray``'s factory); None: the local backend.
ClusterFactory = Callable[[Pool, Path, Callable[[int], Launch], float], Cluster]


class Agent:
    def __init__(
        self,
        cfg: AgentConfig,
        client: httpx.Client | None = None,
        make_cluster: ClusterFactory | None = None,
    ) -> None:
        self.cfg = cfg
        self.client = client or httpx.Client(base_url=cfg.url, timeout=10.0)
        self.headers = {"Authorization": f"Bearer {cfg.token}"}
        self.root = cfg.data_dir
        self.lease_file = self.root / "lease.json"
        self.launches: dict[int, Launch] = {}
        #: The cluster's backend (named ``local`` whatever it is: a LocalCluster or a
        #: RayCluster, both driven through the same calls).
        self.local: Any
        if make_cluster is None:
            self.local = LocalCluster(
                cfg.pool,
                self.root,
                self.launches.__getitem__,
                grace_s=cfg.grace_s,
                sandbox=cfg.sandbox,
            )
        else:
            self.local = make_cluster(cfg.pool, self.root, self.launches.__getitem__, cfg.grace_s)
        if cfg.checkpoint_dir is not None:
            cfg.checkpoint_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.local.checkpoints = cfg.checkpoint_dir
        self.node_index = {n.name: i for i, n in enumerate(cfg.pool.nodes)}
        self.flavor_index = {f: i for i, f in enumerate(cfg.pool.flavors)}
        self.epoch: int | None = None
        self.lease_s = 0.0
        self.valid_until = 0.0
        self.tracked: dict[str, Tracked] = {}
        self.by_idx: dict[int, Tracked] = {}
        #: Ids this session ended or refused (a repeated start is not run again).
        self.closed: set[str] = set()
        self.reports: list[Report] = []
        self._next_idx = 0
        self.fence_proc: subprocess.Popen | None = None
        self.stop_event = threading.Event()

    # ---- life --------------------------------------------------------------------------
    def start_fence(self) -> None:
        """Kill leftovers of an earlier run, then start the fence process."""
        self._fence_at(None)
        if not isinstance(self.local, LocalCluster):  # Ray: detached workers of an earlier run
            for rec in self.local.recover():
                if not rec.closed:
                    self.local.discard(rec, "agent restarted")
        kill_all(self.local.runs, "agent restarted")
        argv = [sys.executable, "-m", "computepool.federation.fence"]
        self.fence_proc = subprocess.Popen(
            [*argv, str(self.local.runs), str(self.lease_file), str(os.getpid())],
            env=inherited_env(os.environ),
            stdin=subprocess.DEVNULL,
        )

    def run(self) -> None:
        self.start_fence()
        try:
            while not self.stop_event.is_set():
                self.step()
        finally:
            self.close()

    def close(self) -> None:
        """Stop every worker, tell the control plane they are gone (it requeues them at once
        rather than when the lease ends), and give up the session."""
        if self.epoch is not None:
            self.local.shutdown(stop_jobs=True)
            kill_all(self.local.runs, "agent stopped")
            for t in list(self.tracked.values()):
                self.reports.append(Report(id=t.id, state="lost", reason="its agent stopped"))
            self.tracked, self.by_idx = {}, {}
            self.cfg = replace(self.cfg, wait_s=0.0)
            with contextlib.suppress(Exception):
                self.heartbeat(leaving=True)
        self.drop_session("agent stopped")
        if self.fence_proc is not None and self.fence_proc.poll() is None:
            self.fence_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.fence_proc.wait(timeout=5)

    @property
    def wait_s(self) -> float:
        """The long poll: short beside the lease, so a slow answer still renews it in time."""
        return min(self.cfg.wait_s, self.lease_s / 8)

    @property
    def safety(self) -> float:
        return max(self.cfg.min_safety_s, self.cfg.safety_frac * self.lease_s)

    def step(self) -> None:
        """One turn: fence if the lease is running out, register if needed, observe the
        workers, heartbeat (long poll), apply the commands."""
        now = time.monotonic()
        if self.epoch is not None and now >= self.valid_until - 2 * self.safety:
            self.drop_session("lease not renewed in time")
        if self.epoch is None and not self.register():
            self.stop_event.wait(0.5)
            return
        self.observe()
        out = self.heartbeat()
        if out is not None:
            self.apply(out)
        elif self.epoch is not None:
            self.stop_event.wait(0.2)  # the control plane did not answer: try again soon

    # ---- sessions ----------------------------------------------------------------------
    def register(self) -> bool:
        body = {
            "cluster": self.cfg.cluster,
            "inventory": inventory_of(self.cfg.pool).model_dump(),
            "agent": f"{socket.gethostname()}:{os.getpid()}",
            "health": self.health().model_dump(),
        }
        sent = time.monotonic()
        try:
            r = self.client.post("/v1/agent/register", json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            log.warning("cannot reach the control plane: %s", exc)
            return False
        if r.status_code != 200:
            log.warning("registration refused (%s): %s", r.status_code, r.text[:500])
            return False
        got = RegisterOut.model_validate(r.json())
        self.epoch, self.lease_s = got.epoch, got.lease_s
        self._renewed(sent)
        log.info("registered as %s, epoch %s", self.cfg.cluster, self.epoch)
        return True

    def _renewed(self, sent: float) -> None:
        self.valid_until = sent + self.lease_s
        self._fence_at(self.valid_until - self.safety)

    def _fence_at(self, at: float | None) -> None:
        """The moment (monotonic) the workers must be gone by, for the fence process, and on
        Ray for the workers themselves (wall clock; None: no session, nothing may run)."""
        write_fence_at(self.lease_file, at)
        publish = getattr(self.local, "publish_lease", None)
        if publish is not None:
            publish(None if at is None else time.time() + (at - time.monotonic()))

    def drop_session(self, why: str) -> None:
        """Stop every worker now and forget the session (a new registration follows)."""
        if self.epoch is not None:
            log.warning("giving up session %s: %s", self.epoch, why)
        self.local.shutdown(stop_jobs=True)
        kill_all(self.local.runs, "fenced")
        self._fence_at(None)
        self.epoch = None
        self.tracked, self.by_idx, self.closed, self.reports = {}, {}, set(), []
        self.launches.clear()

    def health(self) -> Health:
        sb = self.cfg.sandbox
        return Health(
            ok=True,
            running=len(self.local.running),
            sandbox=(sb.warning or "sandboxed")[:256] if sb is not None else "not told",
        )

    # ---- reports -------------------------------------------------------------------------
    def observe(self) -> None:
        obs = self.local.observe(time.time())
        for idx, at in zip(obs.completed.tolist(), obs.completed_at.tolist(), strict=True):
            self._ended(idx, "exited", rc=0, at=at)
        for idx, at in zip(obs.errored.tolist(), obs.errored_at.tolist(), strict=True):
            rc = self.local.exit_codes.get(idx)
            # the Ray backend errs only on an exit code and keeps no reasons
            why = getattr(self.local, "reasons", {}).get(idx, "exit code" if rc is not None else "")
            if rc is not None and why.startswith("exit code"):
                self._ended(idx, "exited", rc=rc, at=at)
            else:
                self._ended(idx, "failed", at=at, reason=why)
        for idx in obs.failed.tolist():
            self._ended(idx, "lost", reason="its workers were lost")
        stopping = {r.job for r in self.local.stopping}
        for t in list(self.tracked.values()):
            if t.stopping and t.idx not in stopping and t.idx not in self.local.running:
                self._ended(t.idx, "stopped")

    def _ended(self, idx: int, state: str, rc: int | None = None, at=None, reason="") -> None:
        t = self.by_idx.pop(idx, None)
        if t is None:
            return
        self.tracked.pop(t.id, None)
        self.closed.add(t.id)
        self.launches.pop(idx, None)
        self.reports.append(
            Report(id=t.id, state=state, rc=rc, at=at, reason=reason[:1000], logs=self._logs(t))
        )

    def _logs(self, t: Tracked, budget: list[int] | None = None) -> list[LogChunk]:
        if t.dir is None:
            return []
        out = []
        for p in sorted(t.dir.glob("rank-*.log")):
            rank = int(p.stem.split("-")[1])
            off = t.read.get(rank, 0)
            take = LOG_CHUNK_MAX // 2
            if budget is not None:
                take = min(take, budget[0])
            if take <= 0:
                break
            try:
                with open(p, "rb") as f:
                    f.seek(off)
                    raw = f.read(take)
            except OSError:
                continue
            if not raw:
                continue
            data = raw.decode(errors="replace")
            out.append(LogChunk(rank=rank, offset=t.sent.get(rank, 0), data=data))
            t.read[rank] = off + len(raw)
            t.sent[rank] = t.sent.get(rank, 0) + len(data.encode())
            if budget is not None:
                budget[0] -= len(raw)
        return out

    def heartbeat(self, leaving: bool = False) -> HeartbeatOut | None:
        budget = [LOG_BYTES_PER_BEAT]
        reports = self.reports[:REPORTS_MAX]
        self.reports = self.reports[REPORTS_MAX:]
        announced = []
        for t in self.tracked.values():
            if t.idx not in self.local.running or len(reports) >= REPORTS_MAX:
                continue
            logs = self._logs(t, budget)
            if logs or not t.announced:  # "running" once; later only to carry log bytes
                reports.append(Report(id=t.id, state="running", logs=logs))
                announced.append(t)
        body = {
            "cluster": self.cfg.cluster,
            "epoch": self.epoch,
            "reports": [r.model_dump() for r in reports],
            "attempts": list(self.tracked),
            "health": self.health().model_dump(),
            "wait_s": self.wait_s,
            "leaving": leaving,
        }
        sent = time.monotonic()
        try:
            r = self.client.post(
                "/v1/agent/heartbeat",
                json=body,
                headers=self.headers,
                timeout=self.wait_s + max(1.0, self.lease_s / 3),
            )
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed: %s", exc)
            self.reports = [x for x in reports if x.state != "running"] + self.reports
            return None
        if r.status_code in (401, 403, 409):
            self.drop_session(f"control plane refused the heartbeat ({r.status_code})")
            return None
        if r.status_code != 200:
            self.reports = [x for x in reports if x.state != "running"] + self.reports
            return None
        self._renewed(sent)
        for t in announced:
            t.announced = True
        return HeartbeatOut.model_validate(r.json())

    # ---- commands ----------------------------------------------------------------------
    def apply(self, out: HeartbeatOut) -> None:
        for s in out.stop:
            t = self.tracked.get(s.id)
            if t is None:
                if s.id not in self.closed:
                    self.closed.add(s.id)
                    self.reports.append(Report(id=s.id, state="stopped"))
                continue
            if not t.stopping:
                t.stopping = True
                kill = s.reason == "cancelled"
                arr = np.asarray([t.idx], dtype=np.int64)
                plan = (
                    RoundPlan(time.time(), 0.0, kill=arr)
                    if kill
                    else RoundPlan(time.time(), 0.0, stop=arr)
                )
                self.local.apply(plan)
        for c in out.start:
            if c.id in self.tracked or c.id in self.closed:
                continue
            self._start(c)

    def _start(self, c: StartCmd) -> None:
        why, placement = self._refusal(c)
        if why:
            log.warning("refused %s (job %s): %s", c.id, c.key, why)
            self.closed.add(c.id)
            self.reports.append(Report(id=c.id, state="refused", reason=why[:1000]))
            return
        idx = self._next_idx
        self._next_idx += 1
        self.launches[idx] = Launch(
            key=c.key[:128],
            argv=tuple(c.argv),
            tenant=c.tenant,
            env=tuple(c.env),
            workdir=c.workdir,
            tenant_id=c.tenant_id,
            datasets=tuple(c.datasets),
            limits=tuple(c.limits),
        )
        assert placement is not None
        placement = replace(placement, job=idx)
        t = Tracked(c.id, idx)
        self.tracked[c.id], self.by_idx[idx] = t, t
        plan = RoundPlan(
            time.time(),
            0.0,
            start=np.asarray([idx], dtype=np.int64),
            start_flavor=np.asarray([placement.flavor], dtype=np.int64),
            placements=(placement,),
            start_delay=np.asarray([c.delay_s], dtype=np.float64),
        )
        self.local.apply(plan)
        r = self.local.running.get(idx)
        t.dir = r.dir if r is not None else None

    def _refusal(self, c: StartCmd) -> tuple[str, Placement | None]:
        """Why this cluster will not run ``c`` (its nodes, its flavor, residency), or ""."""
        try:
            f = self.flavor_index.get(Flavor.parse(c.flavor))
        except ValueError:
            f = None
        if f is None:
            return f"flavor {c.flavor[:128]!r} is not one of this cluster's", None
        workers = []
        for name, devices in c.workers:
            n = self.node_index.get(name)
            if n is None:
                return f"node {name[:128]!r} is not one of this cluster's", None
            node = self.cfg.pool.nodes[n]
            if self.flavor_index[Flavor(node.region, node.accelerator)] != f:
                return f"node {name!r} is not of flavor {c.flavor!r}", None
            if not devices or any(not 0 <= d < node.count for d in devices):
                return f"node {name!r} has no devices {devices[:8]}", None
            workers.append((n, tuple(devices)))
        if not workers:
            return "no workers", None
        regions = [self.cfg.pool.nodes[n].region for n, _ in workers]
        why = recheck(c.residency, self.cfg.regions, regions, self.cfg.rulebook)
        return why, None if why else Placement(-1, f, tuple(workers))
