"""The agent's fence: a small process beside ``cpool agent`` that kills the cluster's workers
when the agent's lease is about to end, or when the agent itself is gone.

The agent writes ``lease.json`` (``{"fence_at": <monotonic seconds>}``) each time it renews
its lease: the moment its workers must be gone, a safety margin before the control plane may
declare the cluster lost and requeue them. This process checks every ``tick`` seconds: past
``fence_at``, with no lease file, or once its parent (the agent) is gone — killed, crashed —
it closes every attempt under ``RUNS`` and kills what still runs of it. It is separate from
the agent so that an agent that is stopped (SIGSTOP), hung or killed is fenced all the same.

    python -m computepool.federation.fence RUNS LEASE_FILE AGENT_PID
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from computepool.backends import attempts as att

TICK_S = 0.05


def read_fence_at(lease_file: Path) -> float | None:
    """The monotonic time the workers must be gone by; None without a valid lease file."""
    try:
        doc = json.loads(lease_file.read_text())
        v = doc.get("fence_at") if isinstance(doc, dict) else None
        return float(v) if isinstance(v, int | float) else None
    except (OSError, ValueError):
        return None


def write_fence_at(lease_file: Path, fence_at: float | None) -> None:
    """Atomically replace the lease file (None: remove it, nothing may run)."""
    if fence_at is None:
        lease_file.unlink(missing_ok=True)
        return
    tmp = lease_file.with_name(lease_file.name + ".tmp")
    tmp.write_text(json.dumps({"fence_at": fence_at}))
    os.replace(tmp, lease_file)


def kill_all(runs: Path, outcome: str = "fenced") -> int:
    """Close every open attempt under ``runs`` and kill whatever of any attempt is alive;
    the number of attempts that had something alive."""
    n = 0
    for rec in att.scan(runs, wait_for_pid_s=0):
        alive = any(r.alive for r in rec.ranks)
        if not rec.closed:
            att.mark_closed(rec.dir, outcome)
        if alive:
            att.kill_attempt(rec)
            n += 1
    return n


def watch(runs: Path, lease_file: Path, parent: int, tick: float = TICK_S) -> None:
    """Until the agent is gone. A lease that ran out is acted on once (the agent starts
    nothing more until it holds a new one), and again whenever the lease file changes."""
    done: object = object()  # the fence_at last acted on
    while True:
        if os.getppid() != parent:  # the agent is gone: nobody reports on its workers
            kill_all(runs)
            return
        fence_at = read_fence_at(lease_file)
        if (fence_at is None or time.monotonic() >= fence_at) and fence_at != done:
            kill_all(runs)
            done = fence_at
        time.sleep(tick)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit():
        print("usage: python -m computepool.federation.fence RUNS LEASE_FILE AGENT_PID")
        return 2
    watch(Path(argv[0]), Path(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
