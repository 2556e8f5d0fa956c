"""Attempt directories: the on-disk record of each start of a job's workers.

    RUNS/<job key>/<attempt>/meta.json      written before any worker is spawned
                             rank-R.launch  what the shim of rank R runs (command, env, sandbox)
                             rank-R.claim   created exclusively by the shim of rank R
                             rank-R.pid     written by the shim as it starts
                             rank-R.log     the worker's stdout and stderr
                             rank-R.exit    written by the shim when the worker ends
                             stopping       the control plane asked it to stop (preempt, cancel)
                             closed         the control plane saw it end (outcome inside)

They outlive the control plane: after a crash, ``scan`` tells which attempts still run,
which ended (and how) and which were lost, so the store can adopt, finish or requeue jobs.

Every file here is written by the control plane or the shim (the supervisor), owner-only
(0600, directories 0700); a sandboxed worker cannot see them. They are still read as untrusted
input: a record that does not parse makes its attempt ``CORRUPT`` (with the reason), never an
exception, and an exit record counts only once the shim that writes it is gone (the exit code
is the supervisor's word, not something a worker can write ahead of its end).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from computepool.backends.shim import proc_stat, write_json

RUNNING, EXITED, LOST, PARTIAL = "running", "exited", "lost", "partial"
#: The attempt's records do not parse: the job fails with ``AttemptRecord.problem``.
CORRUPT = "corrupt"
#: Largest file a record may be (they are a few hundred bytes).
MAX_RECORD_BYTES = 1 << 16


@dataclass(frozen=True)
class RankState:
    rank: int
    pid: int | None
    pgid: int | None
    alive: bool
    rc: int | None
    ended_at: float | None
    claimed: bool = True
    #: Why its records are not believed (empty: they are fine).
    problem: str = ""


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
    #: The tenant whose workers these are ("" when not recorded).
    tenant: str = ""
    #: The rendezvous port reserved for the attempt (0: none recorded).
    master_port: int = 0
    #: Why the records are not believed (empty when they are fine).
    problem: str = ""

    @property
    def state(self) -> str:
        """CORRUPT: a record does not parse; EXITED: every rank ended; RUNNING: every rank
        alive or ended, one alive; PARTIAL: the launch was cut short (some ranks never claimed,
        none lost); LOST otherwise."""
        if self.problem:
            return CORRUPT
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


class BadRecord(ValueError):
    """A record file exists but does not say what it must."""


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None if there is no such file; BadRecord if it is not one."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRecord(f"{path.name}: unreadable ({exc.strerror})") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise BadRecord(f"{path.name}: larger than {MAX_RECORD_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadRecord(f"{path.name}: not JSON") from None
    if not isinstance(doc, dict):
        raise BadRecord(f"{path.name}: not a JSON object")
    return doc


def _int(doc: dict, key: str, name: str, optional: bool = False) -> int | None:
    v = doc.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not -(2**62) < v < 2**62:
        raise BadRecord(f"{name}: {key!r} is not an integer")
    return v


def _float(doc: dict, key: str, name: str) -> float:
    v = doc.get(key)
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        raise BadRecord(f"{name}: {key!r} is not a finite number")
    return float(v)


def alive(pid: int, start: int | None) -> bool:
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return start is None or st[1] == start


def rank_state(d: Path, rank: int) -> RankState:
    """What rank ``rank``'s files say. Its exit record counts only once its shim is gone."""
    pid = pgid = None
    shim_alive = False
    claimed = (d / f"rank-{rank}.claim").exists()
    try:
        pidf = read_json(d / f"rank-{rank}.pid")
        if pidf is not None:
            name = f"rank-{rank}.pid"
            pid, pgid = _int(pidf, "pid", name), _int(pidf, "pgid", name)
            if pid is not None and pid <= 0 or pgid is not None and pgid <= 0:
                raise BadRecord(f"{name}: not a process id")
            assert pid is not None
            shim_alive = alive(pid, _int(pidf, "start", name, optional=True))
        ex = None if shim_alive else read_json(d / f"rank-{rank}.exit")
        rc = at = None
        if ex is not None:
            rc, at = _int(ex, "rc", f"rank-{rank}.exit"), _float(ex, "at", f"rank-{rank}.exit")
    except BadRecord as exc:
        return RankState(rank, pid, pgid, shim_alive, None, None, True, str(exc))
    claimed = claimed or pidf is not None or ex is not None
    return RankState(rank, pid, pgid, shim_alive and rc is None, rc, at, claimed=claimed)


def _last_seen(d: Path, default: float) -> float:
    try:
        return max(p.stat().st_mtime for p in d.iterdir())
    except (OSError, ValueError):
        return default


def _workers(meta: dict) -> tuple[tuple[str, tuple[int, ...]], ...]:
    raw = meta.get("workers")
    if not isinstance(raw, list) or not raw or len(raw) > 65536:
        raise BadRecord("meta.json: 'workers' is not a list of workers")
    out = []
    for w in raw:
        if not (isinstance(w, list) and len(w) == 2 and isinstance(w[1], list)):
            raise BadRecord("meta.json: a worker is not [node, [devices]]")
        out.append((str(w[0]), tuple(_int({"d": x}, "d", "meta.json devices") for x in w[1])))
    return tuple(out)  # type: ignore[arg-type]


def read_attempt(d: Path) -> AttemptRecord | None:
    """What an attempt directory says; None if it has no meta.json (not an attempt). Records
    that do not parse give a ``CORRUPT`` record with the reason."""
    try:
        meta = read_json(d / "meta.json")
    except BadRecord as exc:
        meta, bad = {}, str(exc)
    else:
        if meta is None:
            return None
        bad = ""
    closed: dict | None = None
    try:
        closed = read_json(d / "closed")
        stopping = read_json(d / "stopping")
        if bad:
            raise BadRecord(bad)
        workers = _workers(meta)
        started_at = _float(meta, "started_at", "meta.json")
        spawn_at = _float(meta, "spawn_at", "meta.json") if "spawn_at" in meta else -math.inf
        number = _int(meta, "attempt", "meta.json")
        master_port = _int(meta, "master_port", "meta.json", optional=True) or 0
        if not 0 <= master_port < 65536:
            raise BadRecord("meta.json: 'master_port' is not a TCP port")
        ranks = tuple(rank_state(d, r) for r in range(len(workers)))
    except BadRecord as exc:
        return AttemptRecord(
            key=d.parent.name,
            number=int(d.name) if d.name.isdigit() else 0,
            dir=d,
            flavor="",
            workers=(),
            started_at=_last_seen(d, 0.0),
            ranks=(),
            stop_reason=None,
            closed=closed is not None,
            outcome=None if closed is None else str(closed.get("outcome")),
            last_seen=_last_seen(d, 0.0),
            problem=f"attempt records unreadable: {exc}",
        )
    problem = next((r.problem for r in ranks if r.problem), "")
    return AttemptRecord(
        key=str(meta.get("key", d.parent.name)),
        number=int(number or 0),
        dir=d,
        flavor=str(meta.get("flavor", "")),
        workers=workers,
        started_at=started_at,
        ranks=ranks,
        stop_reason=None if stopping is None else str(stopping.get("reason", "stopped")),
        closed=closed is not None,
        outcome=None if closed is None else str(closed.get("outcome")),
        last_seen=_last_seen(d, started_at),
        spawn_at=spawn_at,
        tenant=str(meta.get("tenant", "")),
        master_port=master_port,
        problem=f"attempt records unreadable: {problem}" if problem else "",
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
    """SIGKILL every rank whose shim is alive (a sandboxed worker dies with its shim); of an
    attempt whose meta.json does not parse, every rank with a pid file that does."""
    ranks = list(rec.ranks)
    if rec.problem and not ranks:
        for p in rec.dir.glob("rank-*.pid"):
            n = p.name[len("rank-") : -len(".pid")]
            if n.isdigit() and len(n) < 7:
                ranks.append(rank_state(rec.dir, int(n)))
    for r in ranks:
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
