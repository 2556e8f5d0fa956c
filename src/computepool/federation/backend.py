"""The federated backend: a ``Cluster`` whose nodes are run by the agents of many clusters.

The control plane's pool is the union of the clusters' nodes; the scheduler, its policies and
the placer see one pool. Each start goes to the cluster that runs the nodes it was placed on,
as a ``StartCmd`` its agent fetches with its next heartbeat (long poll), together with the
residency ``Ticket`` for that cluster's region; the agent's reports come back as the
scheduler's ``Observation`` (completed, errored, failed). Nodes of a cluster without a live
session are cordoned in the placer; a cluster whose lease ran out is lost: its jobs are
requeued (they restart from their checkpoints where the scheduler places them next).

Only the agent of a cluster, in its current epoch, can say anything about that cluster's
attempts: a report naming another cluster's attempt, or sent in an older epoch, is refused.
A start of a job whose previous attempt is still stopping somewhere waits until that one is
confirmed gone (or its cluster's lease has run out), so a job never runs twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from computepool.backends import attempts as att
from computepool.backends.flavor_gate import LiveFlavorGate
from computepool.backends.plans import placed_starts
from computepool.backends.shim import write_json
from computepool.backends.worker_env import Launch
from computepool.federation.protocol import (
    HeartbeatIn,
    HeartbeatOut,
    Inventory,
    Report,
    StartCmd,
    StopCmd,
    Ticket,
)
from computepool.federation.sessions import ClusterSession, match_inventory
from computepool.model.pool import Pool
from computepool.scheduler.interfaces import Observation, Placement, RoundPlan

log = logging.getLogger("computepool.federation")

#: Bytes of one rank's log the control plane keeps per attempt (later bytes are dropped).
MIRROR_MAX = 64 << 20

#: (job, region) -> the residency ticket of a start there (None: no residency check).
TicketFn = Callable[[int, str], Ticket | None]


class StaleSession(Exception):
    """The agent's session is not the cluster's current one (or it was lost): re-register."""


@dataclass
class FedAttempt:
    id: str
    job: int
    key: str
    number: int
    cluster: str
    epoch: int
    flavor: int
    workers: tuple[tuple[int, tuple[int, ...]], ...]
    started_at: float
    dir: Path
    cmd: StartCmd
    acked: bool = False
    stop_reason: str | None = None
    log_sizes: dict[int, int] = field(default_factory=dict)


@dataclass
class Outcomes:
    done: list[tuple[int, float]] = field(default_factory=list)
    err: list[tuple[int, float]] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)


class FederatedCluster:
    def __init__(
        self,
        pool: Pool,
        root: Path,
        describe: Callable[[int], Launch],
        lease_s: float = 15.0,
        poll_s: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool, self.describe, self.clock, self.mono = pool, describe, clock, monotonic
        self.lease_s = lease_s
        self.poll_s = poll_s if poll_s is not None else max(0.05, lease_s / 5)
        self.runs = root / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.cond = threading.Condition()
        self.sessions: dict[str, ClusterSession] = {}
        self.owner: list[str | None] = [None] * len(pool.nodes)
        self.attempts: dict[str, FedAttempt] = {}
        self.running: dict[int, FedAttempt] = {}
        self.exit_codes: dict[int, int] = {}
        self.out = Outcomes()
        self.ticket: TicketFn = lambda _job, _region: None
        self.placer: Any = None
        #: Node index -> True (place on it again) / False (cordon), applied at ``observe``.
        self._node_moves: dict[int, bool] = {}
        self._capacity_changed = False
        #: (F,) flavors a live cluster runs; None: to be computed again (a session changed).
        self._live: np.ndarray | None = None
        #: A restarted control plane places nothing until every lease its predecessor may
        #: have granted has run out (or every known cluster registered again).
        self.fence_until = monotonic() + lease_s
        self.expected: set[str] = set()
        self._fence_opened = False
        self._seq = 0

    # ---- wiring ------------------------------------------------------------------------
    def bind_placer(self, placer: Any) -> None:
        """Every node is cordoned until its cluster's agent registers."""
        self.placer = placer
        for i in range(len(self.pool.nodes)):
            placer.cordon(i)

    def wrap_gate(self, inner: Any) -> LiveFlavorGate:
        """The service's round gate, narrowed to flavors a live cluster runs."""
        why = (
            "no live cluster runs a flavor it may use (its clusters are lost or not registered yet)"
        )
        return LiveFlavorGate(inner, self.live_flavors, why, "federation")

    def live_flavors(self) -> np.ndarray:
        """(F,) bool: flavors with a node some live cluster runs (none before the fence opens)."""
        with self.cond:
            self._expire(self.mono())
            if self._live is None:
                self._live = np.zeros(len(self.pool.flavors), dtype=bool)
                if self._fence_opened:
                    owned = [k for k, owner in enumerate(self.owner) if owner is not None]
                    self._live[self.pool.node_flavor[owned]] = True
            return self._live

    def bind_tickets(self, fn: TicketFn) -> None:
        self.ticket = fn

    def expect(self, clusters: set[str]) -> None:
        """Clusters registered before a restart: once all of them are back, place at once."""
        self.expected = set(clusters)

    # ---- sessions (API threads) --------------------------------------------------------
    def check_inventory(self, cluster: str, inv: Inventory) -> tuple[tuple[int, ...], dict]:
        with self.cond:
            self._expire(self.mono())
            return match_inventory(self.pool, inv, self.owner, cluster)

    def register(self, cluster: str, inv: Inventory, epoch: int, agent: str, health) -> dict:
        """Open a session in ``epoch`` (the store bumped it). The agent has killed whatever
        it ran before it registered: the previous session's jobs are requeued now."""
        with self.cond:
            now = self.mono()
            self._expire(now)
            nodes, regions = match_inventory(self.pool, inv, self.owner, cluster)
            old = self.sessions.get(cluster)
            if old is not None and old.live:
                self._lose(old, "its agent registered again (a new epoch)")
            s = ClusterSession(cluster, epoch, nodes, regions, now + self.lease_s)
            s.agent, s.health = agent[:256], health
            self.sessions[cluster] = s
            for k in nodes:
                self.owner[k] = cluster
            live = {n for n, x in self.sessions.items() if x.live}
            if self._fence_opened or now >= self.fence_until or self.expected <= live:
                self._fence_opened = True
                self._open_fence()
            log.info("cluster registered", extra={"fields": {"detail": f"{cluster} {epoch}"}})
            self.cond.notify_all()
            return {"epoch": epoch, "lease_s": self.lease_s, "poll_s": self.poll_s}

    def _open_fence(self) -> None:
        self._live = None
        for s in self.sessions.values():
            if s.live:
                for k in s.nodes:
                    self._node_moves[k] = True
        self._capacity_changed = True

    def _session(self, cluster: str, epoch: int, now: float) -> ClusterSession:
        self._expire(now)
        s = self.sessions.get(cluster)
        if s is None or s.epoch != epoch or not s.live:
            raise StaleSession(
                f"cluster {cluster!r}: epoch {epoch} is not its current session; register again"
            )
        return s

    def heartbeat(self, body: HeartbeatIn, received: float | None = None) -> HeartbeatOut:
        """Renew the lease (from when the request arrived), take the reports, answer with
        the commands for this cluster (waiting up to ``wait_s`` for one)."""
        now = self.mono() if received is None else received
        with self.cond:
            s = self._session(body.cluster, body.epoch, now)
            s.lease_until, s.last_seen, s.health = now + self.lease_s, self.clock(), body.health
            acked = {i for i, a in self.attempts.items() if a.acked and a.cluster == s.name}
            for r in body.reports:
                self._report(s, r)
            self._reconcile(s, body.attempts, acked)
            if body.leaving:  # its workers are gone: requeue what is left, place nothing more
                self._lose(s, "its agent stopped")
                return HeartbeatOut(lease_s=self.lease_s, poll_s=self.poll_s)
            out = self._commands(s)
            deadline = self.mono() + body.wait_s
            while not out.start and not out.stop and self.mono() < deadline:
                self.cond.wait(deadline - self.mono())
                s = self._session(body.cluster, body.epoch, self.mono())
                out = self._commands(s)
            return out

    def clusters(self) -> list[dict]:
        with self.cond:
            now = self.mono()
            self._expire(now)
            return [s.public(now) for s in sorted(self.sessions.values(), key=lambda x: x.name)]

    # ---- reports -------------------------------------------------------------------------
    def _report(self, s: ClusterSession, r: Report) -> None:
        a = self.attempts.get(r.id)
        if a is None or a.cluster != s.name or a.epoch != s.epoch:
            s.refused_reports += 1
            return
        for chunk in r.logs:
            self._append_log(a, chunk.rank, chunk.offset, chunk.data)
        at = min(r.at if r.at is not None else self.clock(), self.clock())
        if r.state == "running":
            a.acked = True
        elif a.stop_reason is not None:
            if r.state in ("exited", "lost", "stopped", "failed", "refused"):
                self._end(a, a.stop_reason, r.rc)
        elif r.state == "exited" and r.rc == 0:
            self.out.done.append((a.job, at))
            self._write_exits(a, 0, at)
            self._end(a, "succeeded", 0)
        elif r.state == "exited":
            rc = r.rc if r.rc is not None else -1
            self.out.err.append((a.job, at))
            self.out.reasons[a.job] = f"exit code {rc}"
            self.exit_codes[a.job] = rc
            self._write_exits(a, rc, at)
            self._end(a, "failed", rc)
        elif r.state in ("refused", "failed"):
            word = "refused by" if r.state == "refused" else "failed on"
            self.out.err.append((a.job, at))
            self.out.reasons[a.job] = f"{word} cluster {s.name}: {r.reason}"[:1000]
            self._end(a, "failed", None)
        else:  # lost, or stopped on its own: requeued
            self.out.failed.append(a.job)
            self.out.reasons[a.job] = f"workers lost on cluster {s.name}: {r.reason}"[:1000]
            self._end(a, "lost", None)

    def _reconcile(self, s: ClusterSession, driven: list[str], acked: set[str]) -> None:
        """Attempts acknowledged before this heartbeat that the agent no longer drives (and
        did not report as ended) are lost."""
        have = set(driven)
        for a in list(self.attempts.values()):
            if a.cluster == s.name and a.epoch == s.epoch and a.id in acked and a.id not in have:
                if a.stop_reason is not None:
                    self._end(a, a.stop_reason, None)
                else:
                    self.out.failed.append(a.job)
                    self._end(a, "lost", None)
        s.health = s.health.model_copy(update={"running": len(have)})

    def _commands(self, s: ClusterSession) -> HeartbeatOut:
        starts, stops = [], []
        for a in self.attempts.values():
            if a.cluster != s.name or a.epoch != s.epoch:
                continue
            if a.stop_reason is not None:
                stops.append(StopCmd(id=a.id, reason=a.stop_reason))
            elif not a.acked and not self._other_alive(a):
                starts.append(a.cmd)
        return HeartbeatOut(lease_s=self.lease_s, poll_s=self.poll_s, start=starts, stop=stops)

    def _other_alive(self, a: FedAttempt) -> bool:
        """Another attempt of the same job still runs or stops somewhere (in a live session:
        those of a lost cluster were fenced before its lease ended)."""
        return any(o.job == a.job and o.id != a.id for o in self.attempts.values())

    def _append_log(self, a: FedAttempt, rank: int, offset: int, data: str) -> None:
        if rank >= len(a.workers):
            return
        have = a.log_sizes.get(rank, 0)
        raw = data.encode(errors="replace")
        if offset > have or offset + len(raw) <= have:
            return  # a gap or old bytes: only what follows what we have is kept
        raw = raw[have - offset :]
        raw = raw[: max(0, MIRROR_MAX - have)]
        if raw:
            with open(a.dir / f"rank-{rank}.log", "ab") as f:
                f.write(raw)
            a.log_sizes[rank] = have + len(raw)

    def _write_exits(self, a: FedAttempt, rc: int, at: float) -> None:
        for rank in range(len(a.workers)):
            write_json(a.dir / f"rank-{rank}.exit", {"rc": rc, "at": at})

    def _end(self, a: FedAttempt, outcome: str, rc: int | None) -> None:
        self.attempts.pop(a.id, None)
        if self.running.get(a.job) is a:
            del self.running[a.job]
        try:
            att.mark_closed(a.dir, outcome, rc)
        except OSError:
            log.warning("attempt %s: cannot mark it closed", a.dir, exc_info=True)
        self.cond.notify_all()  # a start held for this job may go out now

    # ---- leases ------------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        for s in self.sessions.values():
            if s.live and now >= s.lease_until:
                self._lose(s, f"no heartbeat for {self.lease_s:g} s (lease expired)")

    def _lose(self, s: ClusterSession, why: str) -> None:
        """The cluster is lost: its nodes are cordoned, its jobs requeued. Its agent stopped
        them before its lease ended (or killed them before it registered again)."""
        s.lost, s.lost_at = why, self.clock()
        self._live = None
        log.warning("cluster lost", extra={"fields": {"detail": f"{s.name}: {why}"}})
        for k in s.nodes:
            if self.owner[k] == s.name:
                self.owner[k] = None
                self._node_moves[k] = False
        self._capacity_changed = True
        for a in list(self.attempts.values()):
            if a.cluster != s.name or a.epoch != s.epoch:
                continue
            if a.stop_reason is None:
                self.out.failed.append(a.job)
                self.out.reasons[a.job] = f"cluster {s.name} lost: {why}"
            self._end(a, a.stop_reason or "lost", None)

    # ---- Cluster protocol (scheduler thread) --------------------------------------------
    def apply(self, plan: RoundPlan) -> None:
        with self.cond:
            for j in plan.stop.tolist():
                self._stop(int(j), "preempted")
            for j in plan.kill.tolist():
                self._stop(int(j), "cancelled")
            for j, f, p, delay in placed_starts(plan, "federated", every_worker_slotted=True):
                self._start(j, f, p, plan.now, delay)
            self.cond.notify_all()

    def _stop(self, job: int, reason: str) -> None:
        a = self.running.pop(job, None)
        if a is None:
            return
        a.stop_reason = reason
        att.mark_stopping(a.dir, reason)  # sent with the next heartbeat; the agent confirms

    def _start(self, job: int, flavor: int, p: Placement, now: float, delay: float) -> None:
        clusters = {self.owner[n] for n, _ in p.workers}
        launch = self.describe(job)
        cluster = next(iter(clusters)) if len(clusters) == 1 else None
        if cluster is None or not self.sessions[cluster].live:
            why = "its nodes span clusters" if len(clusters) > 1 else "its cluster is not live"
            self.out.failed.append(job)
            self.out.reasons[job] = f"not started: {why}"
            return
        s = self.sessions[cluster]
        region = self.pool.flavors[flavor].region
        number = att.next_attempt_number(self.runs, launch.key)
        d = self.runs / launch.key / str(number)
        d.mkdir(parents=True, mode=0o700)
        self._seq += 1
        aid = f"{s.epoch}-{self._seq}"
        workers = [(self.pool.nodes[n].name, list(dev)) for n, dev in p.workers]
        write_json(
            d / "meta.json",
            {
                "key": launch.key,
                "attempt": number,
                "tenant": launch.tenant,
                "flavor": self.pool.flavors[flavor].name,
                "workers": workers,
                "started_at": now,
                "backend": "federated",
                "cluster": cluster,
                "attempt_id": aid,
            },
        )
        cmd = StartCmd(
            id=aid,
            job_id=int(launch.key) if launch.key.isdigit() else -1,
            key=launch.key,
            attempt=number,
            tenant=launch.tenant,
            tenant_id=launch.tenant_id,
            argv=list(launch.argv),
            env=list(launch.env),
            workdir=launch.workdir,
            datasets=list(launch.datasets),
            limits=list(launch.limits),
            flavor=self.pool.flavors[flavor].name,
            workers=workers,
            delay_s=max(0.0, float(delay)),
            residency=self.ticket(job, region),
        )
        a = FedAttempt(
            aid, job, launch.key, number, cluster, s.epoch, flavor, p.workers, now, d, cmd
        )
        self.attempts[aid] = a
        self.running[job] = a

    def observe(self, now: float) -> Observation:
        with self.cond:
            self._expire(self.mono())
            if self.mono() >= self.fence_until and not self._fence_opened:
                self._fence_opened = True
                self._open_fence()
            if self.placer is not None:
                for k, up in self._node_moves.items():
                    (self.placer.uncordon if up else self.placer.cordon)(k)
            self._node_moves = {}
            out, self.out = self.out, Outcomes()
            changed, self._capacity_changed = self._capacity_changed, False
        obs = Observation.of_exits(now, out.done, out.err, out.failed, out.reasons)
        return replace(obs, capacity_changed=changed)

    def next_event_time(self) -> float:
        return math.inf

    # ---- restart, logs, exit ---------------------------------------------------------
    def recover(self) -> list[att.AttemptRecord]:
        """Attempts of a previous control plane: their agents stopped them when its leases
        ran out, so a job without every exit code is requeued (as on Ray)."""
        out = []
        for rec in att.scan(self.runs, wait_for_pid_s=0):
            ranks = tuple(
                x if x.rc is not None else replace(x, pid=None, alive=False, claimed=True)
                for x in rec.ranks
            )
            out.append(replace(rec, ranks=ranks))
        return out

    def placement_of(self, job: int, rec: att.AttemptRecord) -> Placement | None:
        """None: after a control-plane restart a cluster's jobs are requeued (from their
        checkpoints) rather than adopted (docs/federation.md), so recovery never calls
        ``adopt`` here."""
        return None

    def adopt(self, job: int, rec: att.AttemptRecord, placement: Placement) -> None:
        """Refused by design (see ``placement_of``); recovery fails the job alone if called."""
        raise RuntimeError("the federated backend requeues its clusters' jobs after a restart")

    def discard(self, rec: att.AttemptRecord, outcome: str) -> None:
        att.mark_closed(rec.dir, outcome, rec.rc)

    def shutdown(self, stop_jobs: bool = False) -> None:
        """Agents keep their workers while their leases hold; a stopping control plane
        sends stops when asked to stop its jobs (agents fetch them while it still answers)."""
        if stop_jobs:
            with self.cond:
                for j in list(self.running):
                    self._stop(j, "shutdown")
                self.cond.notify_all()

    def log_files(self, key: str) -> list[tuple[int, int, Path]]:
        return att.log_files(self.runs, key)
