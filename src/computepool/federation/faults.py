"""Faults for a federation on loopback (``loopback.py``): workers that leave a trace of when
they ran (to find a job run twice at once), and a TCP proxy that can cut a link. The failure
tests and the dispatch benchmark use them."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from pathlib import Path

#: Appends "<time> <node> <step>" every 50 ms to TRACE/<job>-<pid> for SECONDS, checkpointing
#: its step in the checkpoint dir and resuming from it (CPOOL_RESUME_FROM).
WORKER = r"""
import os, sys, time
trace, seconds = sys.argv[1], float(sys.argv[2])
ckpt = os.environ["CPOOL_CHECKPOINT_DIR"]
step = 0
resume = os.environ.get("CPOOL_RESUME_FROM")
if resume:
    step = int(open(resume).read() or 0)
path = os.path.join(trace, os.environ["CPOOL_JOB_ID"] + "-" + str(os.getpid()))
end = time.time() + seconds
with open(path, "a") as f:
    while time.time() < end:
        step += 1
        f.write(f"{time.time()} {os.environ['CPOOL_NODE']} {step}\n")
        f.flush()
        if step % 10 == 0:
            tmp = os.path.join(ckpt, "step.tmp")
            open(tmp, "w").write(str(step))
            os.replace(tmp, os.path.join(ckpt, "step"))
        time.sleep(0.05)
"""


def worker_argv(trace: Path, seconds: float) -> list[str]:
    return [sys.executable, "-c", WORKER, str(trace), str(seconds)]


def runs_of(trace: Path, job_id: int) -> list[tuple[float, float, str, int, int]]:
    """(first, last, node, first step, last step) of each process that ran ``job_id``."""
    out = []
    for p in trace.glob(f"{job_id}-*"):
        lines = [ln.split() for ln in p.read_text().splitlines() if len(ln.split()) == 3]
        if lines:
            out.append(
                (float(lines[0][0]), float(lines[-1][0]), lines[0][1], int(lines[0][2]),
                 int(lines[-1][2]))
            )  # fmt: skip
    return sorted(out)


def overlaps(runs: list[tuple[float, float, str, int, int]]) -> list[tuple]:
    """Pairs of runs of one job that were alive at the same time (a job run twice)."""
    return [(a, b) for a, b in zip(runs, runs[1:], strict=False) if b[0] <= a[1]]


class Proxy:
    """A TCP proxy on loopback in front of ``upstream``; ``cut()`` drops every connection and
    refuses new ones (a partition), ``restore()`` lets them through again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.open = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.open:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                if not self.open:
                    break
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.sock.close()
