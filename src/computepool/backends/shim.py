"""The per-worker shim: runs one worker's command and records its fate in files.

    python -m computepool.backends.shim ATTEMPT_DIR RANK -- ARGV...

It claims the rank (``rank-R.claim``, created exclusively: a second shim for the same rank
exits at once), writes ``rank-R.pid`` (its pid, process group and kernel start time), runs the
command with stdout and stderr in ``rank-R.log``, and writes ``rank-R.exit`` (return code and
end time) when the command ends. It lives in its own session, so it outlives a crashed
control plane, which reads these files on restart to adopt or account for the worker
(containerd-shim and slurmstepd play the same part). SIGTERM reaches the command through
the process group; the shim itself only waits for the command to end.
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


def main(argv: list[str]) -> int:
    attempt_dir, rank, sep, *command = argv
    if sep != "--" or not command:
        print("usage: shim ATTEMPT_DIR RANK -- ARGV...", file=sys.stderr)
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
