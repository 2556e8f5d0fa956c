"""The per-worker shim: runs one worker's command and records its fate in files.

    python -m computepool.backends.shim ATTEMPT_DIR RANK [--watch-parent [--watch-pid PID]] -- ARGV...

It claims the rank (``rank-R.claim``, created exclusively: a second shim for the same rank
exits at once), writes ``rank-R.pid`` (its pid, process group and kernel start time), runs the
command with stdout and stderr in ``rank-R.log``, and writes ``rank-R.exit`` (return code and
end time) when the command ends. It lives in its own session, so it outlives a crashed
control plane, which reads these files on restart to adopt or account for the worker
(containerd-shim and slurmstepd play the same part). SIGTERM reaches the command through
the process group; the shim itself only waits for the command to end.

With ``--watch-parent`` (the Ray backend, whose worker actor starts the shim) the shim's
process group is killed as soon as its parent is gone, or the process ``--watch-pid`` names (the
Ray node's raylet): a Ray worker dies with its node or its driver, and the command it started
must not run on unseen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def write_json(path: Path, doc: dict) -> None:
    """Write atomically: a reader sees the whole file or none."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, kernel start time in clock ticks) of ``pid``; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def proc_start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid``, to tell a reused pid apart."""
    st = proc_stat(pid)
    return None if st is None else st[1]


def running(pid: int, start: int | None) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (start is None or st[1] == start)


def wait_watching(
    child: subprocess.Popen, parent: int, other: int | None = None, every_s: float = 0.2
) -> int:
    """Wait for ``child``; if this process's parent (or ``other``) goes away first, kill our
    process group, this shim included."""
    other_start = proc_start_ticks(other) if other else None
    while True:
        try:
            return child.wait(timeout=every_s)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent or (other and not running(other, other_start)):
                os.killpg(os.getpgid(0), signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: shim ATTEMPT_DIR RANK [--watch-parent] -- ARGV...", file=sys.stderr)
        return 2
    attempt_dir, rank, *body = argv
    watch = bool(body) and body[0] == "--watch-parent"
    parent, other = os.getppid(), None
    body = body[1:] if watch else body
    if watch and len(body) > 1 and body[0] == "--watch-pid" and body[1].isdigit():
        other, body = int(body[1]), body[2:]
    command = body[1:]
    if not body or body[0] != "--" or not command:
        print("usage: shim ATTEMPT_DIR RANK [--watch-parent] -- ARGV...", file=sys.stderr)
        return 2
    d = Path(attempt_dir)
    try:  # exactly one shim runs each rank, even if a recovering control plane spawns another
        os.close(os.open(d / f"rank-{rank}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return 0
    me = os.getpid()
    write_json(
        d / f"rank-{rank}.pid",
        {"pid": me, "pgid": os.getpgid(me), "start": proc_start_ticks(me), "at": time.time()},
    )
    if (d / "stopping").exists() or (d / "closed").exists():  # stopped before it began
        write_json(d / f"rank-{rank}.exit", {"rc": -15, "at": time.time()})
        return 0
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    with open(d / f"rank-{rank}.log", "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.write(f"cpool: cannot start {command[0]!r}: {exc}\n".encode())
            write_json(d / f"rank-{rank}.exit", {"rc": 127, "at": time.time()})
            return 127
        if watch:
            rc = wait_watching(child, parent, other)
        else:
            while True:
                try:
                    rc = child.wait()
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                    continue
    write_json(d / f"rank-{rank}.exit", {"rc": rc, "at": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
