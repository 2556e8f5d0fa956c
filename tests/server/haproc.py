"""Several real ``cpool serve`` processes on one PostgreSQL store (HA tests, benchmark)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.server.serverproc import ServerProcess

#: A worker that says when it starts and ends, in files of its own (its own record of runs).
MARKED_JOB = (
    'echo "$CPOOL_JOB_ID $CPOOL_WORKER_RANK $CPOOL_ATTEMPT" >> {marks}/starts; '
    "sleep {secs}; "
    'echo "$CPOOL_JOB_ID $CPOOL_WORKER_RANK" >> {marks}/ends'
)


def ha_server(
    data: Path, url: str, log: Path, lease_s: float = 2.0, round_s: float = 0.2
) -> ServerProcess:
    """A server of an HA group: every one shares the store and (local backend) the data dir."""
    return ServerProcess(
        data, url, "--standby", "--config", "gavel-36x3", "--policy", "fifo-agnostic",
        "--round-seconds", str(round_s), "--grace-seconds", "1", "--lease-seconds", str(lease_s),
        log=log,
    )  # fmt: skip


def health(server: ServerProcess) -> dict:
    try:
        r = httpx.get(server.url + "/healthz", timeout=1)
        return r.json() if r.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def role(server: ServerProcess) -> str:
    return str(health(server).get("role", ""))


def wait_role(server: ServerProcess, want: str, timeout: float) -> float:
    """Seconds until ``server``'s /healthz says ``want``; AssertionError after ``timeout``."""
    t0 = time.monotonic()
    while role(server) != want:
        assert time.monotonic() - t0 < timeout, f"{server.url} is not {want} after {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - t0


def pause(server: ServerProcess) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def resume(server: ServerProcess) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)


def starts(marks: Path) -> list[tuple[str, str, str]]:
    """(job id, rank, attempt) of every worker start the workers recorded."""
    return [tuple(line.split()[:3]) for line in (marks / "starts").read_text().splitlines()]


def doubled(marks: Path) -> dict[tuple[str, str], int]:
    """Workers (job id, rank) that started more than once."""
    c = Counter(s[:2] for s in starts(marks))
    return {k: n for k, n in c.items() if n > 1}
