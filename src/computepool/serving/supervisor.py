"""Supervisor: a service's replicas as long-lived local processes, health-checked, restarted.

``Supervisor(command)`` starts ``command(port)`` for each replica on a free 127.0.0.1 port,
in its own process group. ``check()`` (call it every few seconds) restarts a replica whose
process exited, or whose ``/health`` failed ``max_fails`` times in a row after its start-up
allowance; ``scale_to(n)`` adds replicas or drains the newest ones (out of the endpoint at
once, stopped after ``drain_s``);
``endpoints()`` lists the healthy ones for the service's stable endpoint. Every start, exit,
restart and stop is kept in ``events``.

Stops never wait: a replica being stopped gets SIGTERM and joins ``stopping``; each ``check``
(or ``reap_stopping``) looks again, sends SIGKILL once ``stop_grace_s`` has passed, and only
when the process is really gone gives its device slots back (so nothing books them while the
engine still holds their memory). ``stop()`` (shutting down) waits; ``stop(wait=False)`` (an
idle service going to zero inside a round) does not.

Any engine fits: ``ready_path`` is its readiness probe, ``ports`` how many consecutive ports a
replica takes, ``launch(replica)`` its argv and own variables (its devices), and ``slots`` (``take`` /
``give``) binds each replica to device slots for its life: a replica that gets none is not
started. ``runner`` runs the replicas elsewhere than as local processes (the Ray backend's
``backends/ray_replicas.py``: an actor on the node that owns the bound devices, which picks the
replica's host and port there); health checks, endpoints, metrics and ``scale_to`` are the same.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int, tries: int = 64) -> int:
    """The first of ``n`` consecutive ports free on 127.0.0.1 now."""
    for _ in range(tries):
        p = free_port()
        if n == 1:
            return p
        if p + n > 65536:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for q in range(p + 1, p + n):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
    raise OSError(f"no {n} consecutive free ports found in {tries} tries")


@dataclass
class Replica:
    port: int
    #: A local ``Popen``, or a runner's handle (``pid``, ``poll()``).
    proc: subprocess.Popen | Any | None
    started: float
    restarts: int = 0
    healthy: bool = False
    fails: int = 0
    #: The device slots it holds: (node index, device indices); -1 / (): none.
    node: int = -1
    devices: tuple[int, ...] = ()
    #: Where it listens (a runner's replica: its node's address) and the interpreter there
    #: (empty: this one's).
    host: str = "127.0.0.1"
    python: str = ""
    #: Being restarted: the old process's stop and why (started again once it is gone).
    restarting: tuple[Stopping, str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Stopping:
    """A replica told to stop whose process may still run (its slots are still held)."""

    replica: Replica
    kill_at: float  # monotonic: SIGKILL from then on
    killed: bool = False
    #: A runner's stop, run in a thread (``Runner.terminate`` may wait); None: a local process.
    thread: threading.Thread | None = None


class Runner(Protocol):
    """Runs replicas away from this process (default: local processes of this machine)."""

    def place(self, r: Replica) -> bool:
        """Make room for ``r`` on its bound node; set ``r.host``, ``r.port`` and ``r.proc``
        (a handle not started yet). False: not placed now (nothing is held)."""
        ...

    def spawn(self, r: Replica, argv: list[str], env: dict[str, str]) -> Any:
        """Start (or restart) ``r``'s command with ``env`` on top of its node's environment;
        the handle (``pid``, ``poll()``)."""
        ...

    def terminate(self, r: Replica, grace_s: float) -> None: ...

    def close(self, r: Replica) -> None:
        """``r`` is stopped for good: free what ``place`` took."""
        ...


class Slots(Protocol):
    def take(self, r: Replica) -> bool: ...

    def give(self, r: Replica) -> None: ...


@dataclass
class Supervisor:
    #: ``port -> argv`` of a replica (or give ``launch``).
    command: Callable[[int], Sequence[str]] | None = None
    name: str = "service"
    #: Seconds a new replica may answer /health with an error before that counts as a failure.
    startup_s: float = 120.0
    max_fails: int = 3
    health_timeout_s: float = 1.0
    log_dir: Path | None = None
    env: dict[str, str] | None = None
    #: Seconds a replica taken out of the endpoint may finish its requests before it stops.
    drain_s: float = 60.0
    #: The engine's readiness probe; consecutive ports per replica; metrics port and path.
    ready_path: str = "/health"
    ports: int = 1
    metrics_port: int = 0
    metrics_path: str = "/metrics"
    #: ``replica -> (argv, its own variables)``; when set, used instead of ``command``.
    launch: Callable[[Replica], tuple[Sequence[str], dict[str, str]]] | None = None
    slots: Slots | None = None
    runner: Runner | None = None
    replicas: list[Replica] = field(default_factory=list)
    draining: list[tuple[float, Replica]] = field(default_factory=list)
    #: Seconds between SIGTERM and SIGKILL when a replica is stopped.
    stop_grace_s: float = 5.0
    stopping: list[Stopping] = field(default_factory=list)
    events: list[tuple[float, str, int, str]] = field(default_factory=list)

    # ---- lifecycle ---------------------------------------------------------------
    def metrics_url(self, r: Replica) -> str:
        return f"http://{r.host}:{r.port + self.metrics_port}{self.metrics_path}"

    def _spawn(self, r: Replica) -> Any:
        own = dict(self.env or {})
        if self.launch is not None:
            argv, mine = self.launch(r)
            own.update(mine)
        elif self.command is not None:
            argv = self.command(r.port)
        else:
            raise ValueError(f"supervisor {self.name!r}: no command and no launch given")
        if self.runner is not None:  # the node's own environment, not this machine's
            return self.runner.spawn(r, list(argv), own)
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{self.name}-{r.port}.log").open("ab")
        env = {**os.environ, **own}
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def _event(self, kind: str, r: Replica, detail: str = "") -> None:
        self.events.append((time.time(), kind, r.port, detail))

    def start_one(self) -> Replica | None:
        """Start one replica; None when ``slots`` has no devices for it."""
        r = Replica(free_ports(self.ports), None, time.monotonic())
        if self.slots is not None and not self.slots.take(r):
            return None
        if self.runner is not None and not self.runner.place(r):
            if self.slots is not None:
                self.slots.give(r)
            return None
        r.proc = self._spawn(r)
        self.replicas.append(r)
        self._event("started", r, f"pid {r.proc.pid}")
        return r

    def _restart(self, r: Replica, why: str) -> None:
        """Stop ``r``'s process without waiting (SIGKILL after 2 s); it is started again at
        once when already gone, else by a later ``check``."""
        r.healthy = False
        r.restarting = (self._signal(r, 2.0), why)
        if self._gone(r.restarting[0], wait=False):
            self._respawn(r)
        else:
            self._event("restarting", r, why)

    def _respawn(self, r: Replica) -> None:
        assert r.restarting is not None
        why, r.restarting = r.restarting[1], None
        r.proc = self._spawn(r)
        r.started, r.healthy, r.fails = time.monotonic(), False, 0
        r.restarts += 1
        self._event("restarted", r, f"{why}; pid {r.proc.pid}")

    def scale_to(self, n: int) -> None:
        """Start replicas up to ``n``, or take the newest out of the endpoint: they drain
        (finish what they hold) for ``drain_s`` and are stopped by a later ``check``."""
        while len(self.replicas) < n:
            if self.start_one() is None:
                break
        while len(self.replicas) > n:
            r = self.replicas.pop()  # newest first
            self.draining.append((time.monotonic() + self.drain_s, r))
            self._event("draining", r)

    def remove(self, r: Replica) -> None:
        """Stop replica ``r`` now (not drained: evicted while idle); its slots go back once
        its process is gone (``stopping``)."""
        if r in self.replicas:
            self.replicas.remove(r)
            self._begin_stop(r)

    def starting(self) -> list[Replica]:
        """Replicas started (or restarted) that have not passed a health check yet."""
        return [
            r
            for r in self.replicas
            if not r.healthy and r.proc is not None and r.restarting is None
        ]

    def _reap(self, force: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for deadline, r in self.draining:
            if force or now >= deadline:
                self._begin_stop(r)
            else:
                keep.append((deadline, r))
        self.draining = keep

    def stop(self, wait: bool = True) -> None:
        """Stop every replica now (draining ones included); ``wait``: until their processes
        are gone (else they are ``stopping`` and a later ``check`` finishes the stop)."""
        while self.replicas:
            self._begin_stop(self.replicas.pop())
        self._reap(force=True)
        self.reap_stopping(wait=wait)

    def _signal(self, r: Replica, grace_s: float) -> Stopping:
        """SIGTERM (or the runner's stop, in a thread) and return at once."""
        st = Stopping(r, time.monotonic() + grace_s)
        if self.runner is not None and r.proc is not None and r.proc.poll() is not None:
            self.runner.terminate(r, grace_s)  # exited already: collects its log, no wait
        elif self.runner is not None:
            st.thread = threading.Thread(
                target=self.runner.terminate, args=(r, grace_s), daemon=True
            )
            st.thread.start()
        elif r.proc is not None and r.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(r.proc.pid, signal.SIGTERM)
        return st

    def _begin_stop(self, r: Replica) -> None:
        self.stopping.append(self._signal(r, self.stop_grace_s))
        self._event("stopping", r)

    def _gone(self, st: Stopping, wait: bool) -> bool:
        """Is ``st``'s process gone? SIGKILL once its grace has passed; ``wait``: block
        until it is gone."""
        if st.thread is not None:
            if wait:
                st.thread.join()
            return not st.thread.is_alive()
        p = st.replica.proc
        if p is None or p.poll() is not None:
            return True
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(st.kill_at - time.monotonic(), 0.0))
        if p.poll() is None and time.monotonic() >= st.kill_at and not st.killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            st.killed = True
        if wait and p.poll() is None:
            p.wait(timeout=self.stop_grace_s)
        return p.poll() is not None

    def reap_stopping(self, wait: bool = False) -> int:
        """Finish the stops whose processes are gone (their slots go back); returns how many
        are still stopping."""
        keep = []
        for st in self.stopping:
            if not self._gone(st, wait):
                keep.append(st)
                continue
            r = st.replica
            if self.runner is not None:
                self.runner.close(r)
            self._event("stopped", r, "killed" if st.killed else "")
            if self.slots is not None:
                self.slots.give(r)
        self.stopping = keep
        return len(keep)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- health -------------------------------------------------------------------
    def check(self) -> list[str]:
        """One health pass over all replicas; returns what it did (for logs and tests)."""
        done = []
        self._reap()
        self.reap_stopping()
        with httpx.Client(timeout=self.health_timeout_s) as client:
            for r in self.replicas:
                if r.restarting is not None:  # its old process is stopping
                    if self._gone(r.restarting[0], wait=False):
                        self._respawn(r)
                    continue
                code = r.proc.poll()
                if code is not None:
                    self._event("exited", r, f"code {code}")
                    self._restart(r, f"process exited with {code}")
                    done.append(f"restarted {r.port} (exit {code})")
                    continue
                try:
                    ok = client.get(f"{r.url}{self.ready_path}").status_code == 200
                except httpx.HTTPError:
                    ok = False
                r.healthy = ok
                loading = time.monotonic() - r.started < self.startup_s
                r.fails = 0 if ok or loading else r.fails + 1
                if r.fails >= self.max_fails:
                    self._restart(r, f"/health failed {r.fails} times")
                    done.append(f"restarted {r.port} (unhealthy)")
        return done

    def endpoints(self) -> list[str]:
        return [r.url for r in self.replicas if r.healthy and r.proc.poll() is None]

    def wait_healthy(self, n: int | None = None, timeout_s: float = 60.0) -> bool:
        """Check until ``n`` (default: all) replicas are healthy or ``timeout_s`` passes."""
        want = len(self.replicas) if n is None else n
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.check()
            if len(self.endpoints()) >= want:
                return True
            time.sleep(0.2)
        return False
