"""Attempt directories: the on-disk record of each start of a job's workers.

    RUNS/<job key>/<attempt>/meta.json      written before any worker is spawned
                             rank-R.claim   created exclusively by the shim of rank R
                             rank-R.pid     written by the shim as it starts
                             rank-R.log     the worker's stdout and stderr
                             rank-R.exit    written by the shim when the worker ends
                             stopping       the control plane asked it to stop (preempt, cancel)
                             closed         the control plane saw it end (outcome inside)

They outlive the control plane: after a crash, ``scan`` tells which attempts still run,
which ended (and how) and which were lost, so the store can adopt, finish or requeue jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from computepool.backends.shim import proc_stat, write_json

RUNNING, EXITED, LOST, PARTIAL = "running", "exited", "lost", "partial"


@dataclass(frozen=True)
class RankState:
    rank: int
    pid: int | None
    pgid: int | None
    alive: bool
    rc: int | None
    ended_at: float | None
    claimed: bool = True


@dataclass(frozen=True)
class AttemptRecord:
    """What an attempt directory says (one read of the files)."""

    key: str
    number: int
    dir: Path
    flavor: str
    #: (node name, device indices) per worker, rank order.
    workers: tuple[tuple[str, tuple[int, ...]], ...]
    started_at: float
    ranks: tuple[RankState, ...]
    stop_reason: str | None
    closed: bool
    #: What the control plane recorded when it closed the attempt ("succeeded", "failed", ...).
    outcome: str | None = None
    #: Last time any of its files changed: when a lost worker was last known alive.
    last_seen: float = 0.0
    #: Workers start no earlier than this (its data was being copied in); -inf: at once.
    spawn_at: float = float("-inf")

    @property
    def state(self) -> str:
        """EXITED: every rank ended; RUNNING: every rank alive or ended, one alive; PARTIAL:
        the launch was cut short (some ranks never claimed, none lost); LOST otherwise."""
        if all(r.rc is not None for r in self.ranks):
            return EXITED
        if all(r.alive or r.rc is not None for r in self.ranks) and any(
            r.alive for r in self.ranks
        ):
            return RUNNING
        if all(r.alive or r.rc == 0 or not r.claimed for r in self.ranks):
            return PARTIAL
        return LOST

    @property
    def unclaimed(self) -> list[int]:
        return [r.rank for r in self.ranks if not r.claimed]

    @property
    def rc(self) -> int | None:
        codes = [r.rc for r in self.ranks if r.rc is not None]
        bad = [c for c in codes if c != 0]
        return bad[0] if bad else (0 if codes else None)

    @property
    def ended_at(self) -> float | None:
        ends = [r.ended_at for r in self.ranks if r.ended_at is not None]
        return max(ends) if ends else None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int, start: int | None) -> bool:
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start is None or st[1] == start


def rank_state(d: Path, rank: int) -> RankState:
    ex = read_json(d / f"rank-{rank}.exit")
    pidf = read_json(d / f"rank-{rank}.pid")
    pid = pgid = None
    is_alive = False
    if pidf is not None:
        pid, pgid = int(pidf["pid"]), int(pidf["pgid"])
        is_alive = ex is None and alive(pid, pidf.get("start"))
    return RankState(
        rank,
        pid,
        pgid,
        is_alive,
        None if ex is None else int(ex["rc"]),
        None if ex is None else float(ex["at"]),
        claimed=pidf is not None or ex is not None or (d / f"rank-{rank}.claim").exists(),
    )


def read_attempt(d: Path) -> AttemptRecord | None:
    meta = read_json(d / "meta.json")
    if meta is None:
        return None
    workers = tuple((str(n), tuple(int(x) for x in dev)) for n, dev in meta["workers"])
    stopping = read_json(d / "stopping")
    closed = read_json(d / "closed")
    try:
        last_seen = max(p.stat().st_mtime for p in d.iterdir())
    except (OSError, ValueError):
        last_seen = float(meta["started_at"])
    return AttemptRecord(
        key=str(meta["key"]),
        number=int(meta["attempt"]),
        dir=d,
        flavor=str(meta["flavor"]),
        workers=workers,
        started_at=float(meta["started_at"]),
        ranks=tuple(rank_state(d, r) for r in range(len(workers))),
        stop_reason=None if stopping is None else str(stopping.get("reason", "stopped")),
        closed=closed is not None,
        outcome=None if closed is None else closed.get("outcome"),
        last_seen=last_seen,
        spawn_at=float(meta.get("spawn_at", float("-inf"))),
    )


def attempt_dirs(runs: Path, key: str) -> list[Path]:
    base = runs / key
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def next_attempt_number(runs: Path, key: str) -> int:
    dirs = attempt_dirs(runs, key)
    return int(dirs[-1].name) + 1 if dirs else 1


def signal_group(pgid: int | None, pid: int | None, sig: int) -> None:
    """Signal a worker's process group (the shim leads it); quietly skip one that is gone."""
    if pgid is None or pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def mark_stopping(d: Path, reason: str) -> None:
    write_json(d / "stopping", {"reason": reason, "at": time.time()})


def mark_closed(d: Path, outcome: str, rc: int | None = None) -> None:
    write_json(d / "closed", {"outcome": outcome, "rc": rc, "at": time.time()})


def kill_attempt(rec: AttemptRecord) -> None:
    for r in rec.ranks:
        if r.alive:
            signal_group(r.pgid, r.pid, signal.SIGKILL)


def close_and_kill(d: Path, outcome: str, rc: int | None = None) -> None:
    """Close an attempt for good: first the marker (a shim starting later sees it and does
    not run), then kill every rank that is alive now."""
    mark_closed(d, outcome, rc)
    rec = read_attempt(d)
    if rec is not None:
        kill_attempt(rec)


def _missing_pid(rec: AttemptRecord) -> bool:
    """A shim has claimed its rank but not yet said who it is (a few microseconds)."""
    return any(r.claimed and r.pid is None and r.rc is None for r in rec.ranks)


def scan(runs: Path, wait_for_pid_s: float = 1.0) -> list[AttemptRecord]:
    """Every attempt not yet closed, plus the latest attempt of every job (closed or not).

    A rank claimed just before a crash may not have written its pid file yet: wait up to
    ``wait_for_pid_s`` for it. A rank never claimed may still be claimed by a slow shim: a
    recovery that spawns it again is safe, since only one shim can claim a rank.
    """
    out: list[AttemptRecord] = []
    if not runs.is_dir():
        return out
    for job_dir in sorted(runs.iterdir()):
        dirs = attempt_dirs(runs, job_dir.name)
        for i, d in enumerate(dirs):
            if i < len(dirs) - 1 and (d / "closed").exists():
                continue
            rec = read_attempt(d)
            if rec is not None:
                out.append(rec)
    deadline = time.time() + wait_for_pid_s
    while time.time() < deadline and any(_missing_pid(r) and not r.closed for r in out):
        time.sleep(0.05)
        out = [(read_attempt(r.dir) or r) if _missing_pid(r) and not r.closed else r for r in out]
    return out


def log_files(runs: Path, key: str) -> list[tuple[int, int, Path]]:
    """(attempt, rank, path) of every log of a job, oldest attempt first."""
    out = []
    for d in attempt_dirs(runs, key):
        for p in sorted(d.glob("rank-*.log"), key=lambda p: int(p.stem.split("-")[1])):
            out.append((int(d.name), int(p.stem.split("-")[1]), p))
    return out
