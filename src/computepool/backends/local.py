"""The local backend: a ``Cluster`` whose jobs are real processes on this machine.

Each worker of a started job runs its command under the shim (``backends/shim.py``) in a
session of its own, with the device slots it was placed on exported in the stack's variable
(``CUDA_VISIBLE_DEVICES``, ``ASCEND_RT_VISIBLE_DEVICES``, ...) and ``CPOOL_*`` variables
(job id, worker rank, world size, node, flavor, checkpoint dir, attempt, last checkpoint) and
the gang's rendezvous (``MASTER_ADDR`` is this machine, ``MASTER_PORT`` reserved per attempt).
A stop (preemption) or kill (cancellation) sends SIGTERM to each worker's shim (which passes
it on to every process of the worker), then SIGKILL after ``grace_s``; a start on devices still held by a stopping worker waits for
them. A start with a delay (``RoundPlan.start_delay``: the job's data is copied in from
another region first) holds its devices and spawns its workers when the delay is over. Nodes are the pool's nodes, simulated on this machine: the devices are only numbers.

With a ``SandboxStatus`` that is enabled, each worker runs as its tenant's user in a sandbox
(``backends/sandbox.py``) that shows it only its own work and checkpoint directories. Without
one, workers run as the server's user; unless the operator allowed it, the workers of only one
tenant are run then. One job's trouble stays that job's: a start, stop or observation that
fails for a job fails that job (with the reason), never the round.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from computepool.backends import attempts as att
from computepool.backends.plans import placed_starts
from computepool.backends.rendezvous import Master, hccl_rank_table, reserve_port
from computepool.backends.sandbox import Limits, SandboxStatus, tenant_uid
from computepool.backends.shim import read_epoch, write_json
from computepool.backends.worker_env import (
    Launch,
    inherited_env,
    job_env,
    latest_checkpoint,
    launch_problem,
    resume_env,
    workdir_problem,
)
from computepool.backends.worker_launch import JobDirs, job_dirs, make_private_dir, rank_launch
from computepool.model.pool import Pool
from computepool.scheduler.contract import Applied
from computepool.scheduler.interfaces import Observation, Placement, RoundPlan

__all__ = ["Launch", "LocalCluster", "Running", "latest_checkpoint"]

log = logging.getLogger("computepool.backends.local")

#: A start this machine cannot do (not the job's fault) is retried in later rounds; after this
#: many in a row the job fails with the reason.
MAX_START_FAILURES = 3


def _close(d: Path, outcome: str, rc: int | None = None) -> None:
    """Mark an attempt closed; a directory that cannot be written is logged, not raised."""
    try:
        att.mark_closed(d, outcome, rc)
    except OSError:
        log.warning("attempt %s: cannot mark it closed", d, exc_info=True)


class StartError(Exception):
    """A job cannot start; the message is the reason told to its tenant."""


def merged_limits(default: Limits, asked: tuple[tuple[str, int], ...]) -> Limits:
    """The job's limits: what it asked for, never above the pool's default (when one is set)."""
    names = {f.name for f in fields(Limits)}
    out = {f.name: getattr(default, f.name) for f in fields(Limits)}
    for k, v in asked:
        if k in names and isinstance(v, int) and v > 0:
            cap = out[k]
            out[k] = v if cap is None else min(v, cap)
    return Limits(**out)


@dataclass
class Running:
    """One attempt the backend drives: started, adopted, or stopping."""

    job: int
    key: str
    number: int
    dir: Path
    flavor: int
    workers: tuple[tuple[int, tuple[int, ...]], ...]
    started_at: float
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)  # rank -> its shim
    stop_reason: str | None = None
    kill_at: float = math.inf
    spawned: bool = False
    #: Workers are spawned no earlier than this (a data transfer before the start).
    spawn_at: float = -math.inf
    #: The rendezvous port reserved for this attempt (``MASTER_PORT``; 0: none).
    master_port: int = 0


class LocalCluster:
    def __init__(
        self,
        pool: Pool,
        root: Path,
        describe: Callable[[int], Launch],
        grace_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        sandbox: SandboxStatus | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.pool, self.describe, self.grace_s, self.clock = pool, describe, grace_s, clock
        #: None: unsandboxed, any number of tenants (a library user's own processes).
        self.sandbox = sandbox
        self.limits = limits or Limits()
        self.root = root
        self.runs, self.checkpoints = root / "runs", root / "checkpoints"
        self.work = root / "work"
        for d in (self.runs, self.checkpoints, self.work):
            make_private_dir(d)
        #: Unsandboxed and not allowed to mix tenants: the one tenant whose jobs run.
        self.sole_tenant: str | None = None
        self.node_index = {n.name: i for i, n in enumerate(pool.nodes)}
        self.flavor_index = {f.name: i for i, f in enumerate(pool.flavors)}
        self.running: dict[int, Running] = {}
        self.stopping: list[Running] = []
        self.waiting: list[Running] = []  # placed, devices still held by a stopping attempt
        self.exit_codes: dict[int, int] = {}  # job -> return code of its last failed attempt
        #: Jobs failed by the backend itself (start, stop, observation): (when, why), reported
        #: by the next ``observe`` as errored with the reason.
        self.failures: dict[int, tuple[float, str]] = {}
        #: job -> why its last attempt failed (the event's and the API's ``reason``).
        self.reasons: dict[int, str] = {}
        #: job -> starts in a row this machine could not do (``apply``).
        self.failed_starts: dict[int, int] = {}
        #: The store's writer epoch of this control plane (None: not fenced). Each launch
        #: record carries it; a shim whose epoch is older than the one on file does not run.
        self.epoch: int | None = None
        self.epoch_file = root / "writer-epoch"

    # ---- Cluster protocol ------------------------------------------------------------
    def apply(self, plan: RoundPlan) -> Applied | None:
        """Stops, kills, then starts. A start this machine could not do (an OS error, not the
        job's own problem) is undone and returned: the job waits again with the reason, up to
        ``MAX_START_FAILURES`` times in a row, then fails. A job whose launch is wrong
        (``StartError``) fails at once: starting it again would not help."""
        for j in plan.stop.tolist():
            self._guard(int(j), plan.now, "stopping it", self._stop, int(j), "preempted")
        for j in plan.kill.tolist():
            self._guard(int(j), plan.now, "stopping it", self._stop, int(j), "cancelled")
        not_started: dict[int, str] = {}
        for j, f, p, delay in placed_starts(plan, "local"):
            try:
                self._start(j, f, p, plan.now, delay)
            except StartError as exc:
                self.fail(j, plan.now, str(exc))
            except Exception as exc:  # this machine's trouble for this start only
                log.warning("job %s: error starting it", j, exc_info=True)
                why = f"error starting it: {type(exc).__name__}: {exc}"[:1000]
                n = self.failed_starts.get(j, 0) + 1
                if n >= MAX_START_FAILURES:
                    self.failed_starts.pop(j, None)
                    self.fail(j, plan.now, f"{why} ({n} starts in a row failed)")
                    continue
                self.failed_starts[j] = n
                self._undo_start(j)
                not_started[j] = why
            else:
                self.failed_starts.pop(j, None)
        return Applied(not_started) if not_started else None

    def _undo_start(self, job: int) -> None:
        """Close and kill whatever a start that failed half-way left behind."""
        r = self.running.pop(job, None)
        if r is not None:
            if r in self.waiting:
                self.waiting.remove(r)
            self._kill_now(r)

    def _guard(self, job: int, now: float, doing: str, fn: Callable, *args) -> None:
        """Run one job's step; if it fails, that job fails (with the reason), nothing else."""
        try:
            fn(*args)
        except StartError as exc:
            self.fail(job, now, str(exc))
        except Exception as exc:  # an OS error, a bad record: this job's trouble only
            log.warning("job %s: error %s", job, doing, exc_info=True)
            self.fail(job, now, f"error {doing}: {type(exc).__name__}: {exc}"[:1000])

    def fail(self, job: int, now: float, reason: str) -> None:
        """Fail ``job`` now with ``reason``: whatever of it runs is killed, its attempt closed."""
        r = self.running.pop(job, None)
        if r is not None:
            if r in self.waiting:
                self.waiting.remove(r)
            self._kill_now(r)
        self.failures[job] = (now, reason)
        self.reasons[job] = reason

    def _kill_now(self, r: Running) -> None:
        """Close ``r`` as failed, then kill whatever of it runs (its shims, and so its sandboxes)."""
        try:
            att.close_and_kill(r.dir, "failed", None)
        except OSError:
            log.warning("attempt %s: cannot close", r.dir, exc_info=True)
        for p in r.procs.values():
            if p.poll() is None:
                att.signal_group(p.pid, p.pid, signal.SIGKILL)
        self._reap(r)

    def observe(self, now: float) -> Observation:
        done: list[tuple[int, float]] = []
        err: list[tuple[int, float]] = []
        failed: list[int] = []
        for r in list(self.running.values()):
            if not r.spawned:
                continue
            self._guard(r.job, now, "observing it", self._observe_one, r, now, done, err, failed)
        self._progress_stops(now)
        for j, (at, _) in self.failures.items():
            err.append((j, min(at, now)))
        self.failures = {}
        why = {j: self.reasons[j] for j, _ in err if j in self.reasons}
        return Observation.of_exits(now, done, err, failed, why)

    def _observe_one(self, r: Running, now: float, done: list, err: list, failed: list) -> None:
        rec = att.read_attempt(r.dir)
        self._reap(r)
        if rec is None:
            raise StartError("its attempt record is gone")
        if rec.state == att.CORRUPT:
            att.kill_attempt(rec)
            raise StartError(rec.problem)
        state, rc = rec.state, rec.rc
        if state in (att.LOST, att.PARTIAL) and self._starting(r, rec):
            return
        if state == att.RUNNING and (rc is None or rc == 0):
            return
        # The files may be newer than the round's ``now`` (read during the round): an
        # end is never reported after the time the round starts others in its place.
        end = min(rec.ended_at or now, now)
        if state == att.EXITED and rc == 0:
            done.append((r.job, end))
            self._finish(r, "succeeded", 0)
        elif rc not in (None, 0):
            att.kill_attempt(rec)
            err.append((r.job, end))
            self.reasons[r.job] = f"exit code {rc}"
            self._finish(r, "failed", rc)
        else:
            att.kill_attempt(rec)
            failed.append(r.job)
            self._finish(r, "lost", None)

    def next_event_time(self) -> float:
        return math.inf

    # ---- starting ----------------------------------------------------------------------
    def _start(self, job: int, flavor: int, p: Placement, now: float, delay: float = 0.0) -> None:
        launch = self.describe(job)
        self._check(launch)
        number = att.next_attempt_number(self.runs, launch.key)
        d = self.runs / launch.key / str(number)
        make_private_dir(d.parent)
        d.mkdir(mode=0o700)
        port = reserve_port(taken=self._ports())
        r = Running(job, launch.key, number, d, flavor, p.workers, now, master_port=port)
        meta = {
            "key": launch.key,
            "attempt": number,
            "tenant": launch.tenant,
            "flavor": self.pool.flavors[flavor].name,
            "workers": [[self.pool.nodes[n].name, list(dev)] for n, dev in p.workers],
            "started_at": now,
            "master_port": port,
        }
        if delay > 0:
            r.spawn_at = now + delay
            meta.update(transfer_s=delay, spawn_at=r.spawn_at)
        write_json(d / "meta.json", meta)
        self.running[job] = r
        if self._devices_free(r) and self.clock() >= r.spawn_at:
            self._spawn(r, launch)
        else:
            self.waiting.append(r)

    @property
    def sandboxed(self) -> bool:
        return self.sandbox is not None and self.sandbox.enabled

    def _check(self, launch: Launch) -> None:
        """Raise StartError with the reason if ``launch`` cannot start here."""
        why = launch_problem(launch) or workdir_problem(launch.workdir)
        if why:
            raise StartError(why)
        if self.sandboxed and launch.workdir:
            wd, data = Path(launch.workdir).resolve(), self.root.resolve()
            if wd.is_relative_to(data) or data.is_relative_to(wd):
                raise StartError(
                    f"workdir {launch.workdir[:256]!r} is inside the pool's data or holds it"
                )
        sb = self.sandbox
        if sb is not None and not sb.enabled and not sb.allow_unsandboxed:
            if self.sole_tenant is None:
                self.sole_tenant = launch.tenant
            elif launch.tenant != self.sole_tenant:
                raise StartError(
                    f"not started: {sb.warning} (this server runs tenant "
                    f"{self.sole_tenant!r}'s jobs)"
                )

    def _uid(self, launch: Launch) -> int | None:
        if not self.sandboxed:
            return None
        assert self.sandbox is not None
        try:
            return tenant_uid(self.sandbox.config, launch.tenant_id)
        except ValueError as exc:
            raise StartError(str(exc)) from None

    def _ports(self) -> set[int]:
        """Rendezvous ports the attempts this backend drives hold (never handed out twice)."""
        return {r.master_port for r in (*self.running.values(), *self.stopping)}

    def _busy(self) -> set[tuple[int, int]]:
        return {(n, d) for s in self.stopping for n, dev in s.workers for d in dev}

    def _devices_free(self, r: Running) -> bool:
        busy = self._busy()
        return not any((n, d) in busy for n, dev in r.workers for d in dev)

    def worker_env(
        self, r: Running, launch: Launch, rank: int, dirs: JobDirs | None = None
    ) -> dict[str, str]:
        """Rank ``rank``'s environment (host paths; the sandbox maps its own). Sandboxed: the
        job's env, the CPOOL_* variables, the rendezvous and the device variables only. Every
        "node" of this backend is this machine: rank 0's host is the loopback address."""
        node, devices = r.workers[rank]
        master = Master("127.0.0.1", r.master_port) if r.master_port else None
        ckpt = dirs.checkpoint if dirs is not None else self.checkpoints / launch.key
        env = {} if self.sandboxed else inherited_env(os.environ)
        env.update(
            job_env(
                launch,
                rank=rank,
                world_size=len(r.workers),
                node=self.pool.nodes[node].name,
                flavor=self.pool.flavors[r.flavor].name,
                accelerator=self.pool.accelerators[self.pool.flavors[r.flavor].accelerator],
                devices=devices,
                checkpoint_dir=str(ckpt),
                attempt=r.number,
                nodes=tuple(self.pool.nodes[n].name for n, _ in r.workers),
                master=master,
            )
        )
        env.update(resume_env(ckpt))
        if master is not None and dirs is not None and "RANK_ID" in env:  # an Ascend gang
            env["RANK_TABLE_FILE"] = str(self._rank_table(r, dirs))
        return env

    def _rank_table(self, r: Running, dirs: JobDirs) -> Path:
        """HCCL's rank table of the attempt, in the job's work directory (written once)."""
        path = dirs.work / f".cpool-rank-table-{r.number}.json"
        if not path.exists():
            nodes = [self.pool.nodes[n].name for n, _ in r.workers]
            table = hccl_rank_table(nodes, [dev for _, dev in r.workers])
            path.write_text(json.dumps(table, indent=1))
            path.chmod(0o644)
        return path

    def _spawn(self, r: Running, launch: Launch, ranks: list[int] | None = None) -> None:
        self._check(launch)  # again: a workdir may be gone since (a delayed start, an adoption)
        uid = self._uid(launch)
        dirs = job_dirs(self.work, self.checkpoints, launch.key, uid)
        limits = merged_limits(self.limits, launch.limits)
        granted = dict(self.sandbox.config.datasets) if self.sandbox is not None else {}
        datasets = [(n, granted[n]) for n in launch.datasets if n in granted]
        for rank in range(len(r.workers)) if ranks is None else ranks:
            env = self.worker_env(r, launch, rank, dirs)
            spec = rank_launch(
                launch, env, dirs, self.sandbox, uid, limits, datasets, gang=len(r.workers) > 1
            )
            if self.epoch is not None:
                spec["writer_epoch"] = {"epoch": self.epoch, "file": str(self.epoch_file)}
            write_json(r.dir / f"rank-{rank}.launch", spec)
            argv = [sys.executable, "-m", "computepool.backends.shim", str(r.dir), str(rank)]
            r.procs[rank] = subprocess.Popen(
                [*argv, "--launch"],
                env=inherited_env(os.environ),
                cwd=str(r.dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        r.spawned = True

    # ---- stopping ----------------------------------------------------------------------
    def _stop(self, job: int, reason: str) -> None:
        r = self.running.pop(job, None)
        if r is None:
            return
        if r in self.waiting:
            self.waiting.remove(r)
        r.stop_reason, r.kill_at = reason, self.clock() + self.grace_s
        if r.spawned:  # kept track of before anything can fail: it is stopped in any case
            self.stopping.append(r)
        try:
            att.mark_stopping(r.dir, reason)
        except OSError:
            log.warning("attempt %s: cannot mark it stopping", r.dir, exc_info=True)
        if r.spawned:
            self._signal(r, signal.SIGTERM)
        else:
            _close(r.dir, reason)

    def _signal(self, r: Running, sig: int) -> None:
        rec = att.read_attempt(r.dir)
        for rank in rec.ranks if rec else ():
            if rank.alive:
                att.signal_group(rank.pgid, rank.pid, sig)
        for p in r.procs.values():  # a shim that has not written its pid file yet
            if p.poll() is None:
                att.signal_group(p.pid, p.pid, sig)

    @staticmethod
    def _starting(r: Running, rec: att.AttemptRecord) -> bool:
        """Every rank without a pid yet has a shim of ours that is still starting."""
        waiting = [x.rank for x in rec.ranks if x.pid is None and x.rc is None]
        return bool(waiting) and all(k in r.procs and r.procs[k].poll() is None for k in waiting)

    def _reap(self, r: Running) -> None:
        for p in r.procs.values():
            p.poll()

    def _progress_stops(self, now: float) -> None:
        still = []
        for r in self.stopping:
            self._reap(r)
            rec = att.read_attempt(r.dir)
            gone = rec is None or not any(x.alive for x in rec.ranks)
            if gone and all(p.poll() is not None for p in r.procs.values()):
                _close(r.dir, r.stop_reason or "stopped")
                continue
            if self.clock() >= r.kill_at:
                self._signal(r, signal.SIGKILL)
            still.append(r)
        self.stopping = still
        for r in list(self.waiting):
            if self.clock() >= r.spawn_at and self._devices_free(r):
                self.waiting.remove(r)
                self._guard(r.job, now, "starting it", self._spawn, r, self.describe(r.job))

    def _finish(self, r: Running, outcome: str, rc: int | None) -> None:
        self.running.pop(r.job, None)
        if rc:
            self.exit_codes[r.job] = rc
        self._reap(r)
        _close(r.dir, outcome, rc)

    # ---- after a restart ---------------------------------------------------------------
    def fence_epoch(self, epoch: int) -> None:
        """This control plane now holds the store's writer lease at ``epoch``: put it on file
        before reading the attempts, so that a worker a deposed leader launches after that
        read (one this server cannot see) refuses to run (``shim.deposed``)."""
        on_file = read_epoch(self.epoch_file)
        if on_file is not None and on_file > epoch:
            raise RuntimeError(f"a newer writer (epoch {on_file}) has taken this data dir over")
        tmp = self.epoch_file.with_name(f".{self.epoch_file.name}.{os.getpid()}")
        tmp.write_text(f"{epoch}\n")
        os.replace(tmp, self.epoch_file)
        self.epoch = epoch

    def recover(self) -> list[att.AttemptRecord]:
        return att.scan(self.runs)

    def placement_of(self, job: int, rec: att.AttemptRecord) -> Placement | None:
        f = self.flavor_index.get(rec.flavor)
        nodes = [self.node_index.get(n) for n, _ in rec.workers]
        if f is None or any(n is None for n in nodes):
            return None
        return Placement(
            job, f, tuple((int(n), dev) for n, (_, dev) in zip(nodes, rec.workers, strict=True))
        )

    def adopt(self, job: int, rec: att.AttemptRecord, placement: Placement) -> None:
        """Drive a running attempt found after a restart as if this process had started it.

        A launch the crash cut short (``PARTIAL``) is finished: the ranks no shim claimed are
        spawned now (a slow shim that claims first makes the new one exit at once).
        """
        r = Running(
            job,
            rec.key,
            rec.number,
            rec.dir,
            placement.flavor,
            placement.workers,
            rec.started_at,
            spawned=True,
            spawn_at=rec.spawn_at,
            master_port=rec.master_port,
        )
        self.running[job] = r
        if self.sole_tenant is None and rec.tenant:
            self.sole_tenant = rec.tenant
        if len(rec.unclaimed) == len(rec.ranks) and self.clock() < rec.spawn_at:
            r.spawned = False  # still copying its data in: spawned when the delay is over
            self.waiting.append(r)
        elif rec.unclaimed:
            self._spawn(r, self.describe(job), rec.unclaimed)

    def discard(self, rec: att.AttemptRecord, outcome: str) -> None:
        """Kill what is left of an attempt that will not be adopted, and close it."""
        att.close_and_kill(rec.dir, outcome, rec.rc)

    def shutdown(self, stop_jobs: bool) -> None:
        """Leave workers running (a restart adopts them) or stop them all now."""
        if stop_jobs:
            for j in list(self.running):
                self._stop(j, "shutdown")
            deadline = time.time() + self.grace_s
            while self.stopping and time.time() < deadline:
                self._progress_stops(self.clock())
                time.sleep(0.05)
            for r in self.stopping:
                self._signal(r, signal.SIGKILL)
            self._progress_stops(self.clock())
        for r in [*self.running.values(), *self.stopping]:
            self._reap(r)

    def log_files(self, key: str) -> list[tuple[int, int, Path]]:
        return att.log_files(self.runs, key)
