"""The Ray side of a worker: an actor that runs one rank of one attempt on its Ray node.

The control plane creates one ``RayWorker`` actor per rank, inside the attempt's placement
group bundle (pinned to the node the placer chose). The actor starts the same shim as the local
backend (``backends/shim.py``, with ``--watch-parent``: if the actor dies with its node or its
driver, the command dies too) in a node-local directory, with the worker contract of
``backends/worker_env.py`` on top of the node's own environment. Its methods are called
concurrently (a threaded actor, in no set order): ``wait`` blocks until the rank has
started and ended, while ``read_log`` streams the log back and ``stop`` asks it to end (SIGTERM,
SIGKILL after the grace; a stop that comes first means the command never starts).

Fencing: a start carries the launching leader's writer epoch (``backends/ray_fence.py``); when
a newer leader's epoch is on record in the cluster, the rank does not run and the worker
removes its own placement group (its actors with it): the new leader read the attempts before
it put its epoch on record, so it does not know this one, and its devices must not stay held.
A start by an agent (``cpool agent --backend ray``) also names the agent's lease on record in
the cluster: the rank is killed once that lease runs out, even when the agent is paused or
dead (the Ray side of the agent's fence process, ``federation/fence.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from computepool.backends.attempts import rank_state
from computepool.backends.ray_fence import deposed, lease_over
from computepool.backends.rendezvous import Master, master_env, reserve_port, reserve_ports
from computepool.backends.shim import write_json
from computepool.backends.worker_env import inherited_env, resume_env

#: How often a rank checks its agent's lease (seconds).
LEASE_TICK_S = 0.1
#: Largest piece of log one ``read_log`` call returns.
LOG_CHUNK = 1 << 20


class RayWorker:
    """Runs one rank; every method returns plain data (it crosses the Ray object store)."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.rank = 0
        self.proc: subprocess.Popen | None = None
        self.stop_timer: threading.Timer | None = None
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.stopped = False
        #: Launched by a leader that was deposed before this start: never runs.
        self.refused = False

    def reserve_master(self) -> tuple[str, int]:
        """Rank 0's host address and a TCP port free on it now: the gang's rendezvous."""
        import ray

        return ray.util.get_node_ip_address(), reserve_port()

    def where(self, ports: int = 1) -> dict[str, object]:
        """This node's address, the first of ``ports`` consecutive TCP ports free on it now,
        and its interpreter: where a service replica started by this actor will listen."""
        import ray

        return {
            "host": ray.util.get_node_ip_address(),
            "port": reserve_ports(ports),
            "python": sys.executable,
        }

    def start(
        self,
        rank: int,
        argv: list[str],
        env: dict[str, str],
        workdir: str | None,
        master: tuple[str, int] | None = None,
        fence: tuple[str, int] | None = None,
        lease: str | None = None,
    ) -> dict[str, object]:
        """Start the rank's shim; returns where it runs and when it started. ``master``: what
        rank 0's ``reserve_master`` gave (Ray resolves it before this runs). ``fence``: the
        launching leader's (scope, writer epoch); older than the one on record: refused.
        ``lease``: the scope of the launching agent's lease; the rank dies when it runs out."""
        import ray

        where = {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
        if fence is not None and deposed((str(fence[0]), int(fence[1]))):
            with self.lock:
                self.rank, self.refused, self.stopped = rank, True, True
                self.started.set()
            threading.Thread(target=self._drop_group, daemon=True).start()
            return {**where, "at": time.time(), "refused": "launched by a deposed leader"}
        if master is not None:
            env = {**env, **master_env(Master(str(master[0]), int(master[1])))}
        with self.lock:
            self.rank = rank
            # under the node's Ray temp dir: removed by ``finish``, else with the Ray session
            base = Path(ray.get_runtime_context().get_temp_dir()) / "cpool"
            base.mkdir(parents=True, exist_ok=True)
            prefix = f"{env.get('CPOOL_JOB_ID')}-{env.get('CPOOL_ATTEMPT')}-{rank}-"
            self.dir = d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
            if self.stopped or (lease is not None and lease_over(lease, time.time())):
                self.stopped = True
                write_json(d / f"rank-{rank}.exit", {"rc": -15, "at": time.time()})
            else:
                self._spawn(d, rank, argv, env, workdir)
            self.started.set()
        if lease is not None and not self.stopped:
            threading.Thread(target=self._watch_lease, args=(lease,), daemon=True).start()
        return {**where, "at": time.time()}

    def _watch_lease(self, scope: str) -> None:
        """Kill the rank (SIGKILL, no grace: the lease already kept a margin) once its
        agent's lease runs out; until the rank ends."""
        while self.proc is not None and self.proc.poll() is None:
            if lease_over(scope, time.time()):
                with self.lock:
                    self.stopped = True
                self._signal(signal.SIGKILL)
                return
            time.sleep(LEASE_TICK_S)

    def _drop_group(self) -> None:
        """Remove this actor's placement group: its devices are freed, its actors killed."""
        import ray

        pg = ray.util.get_current_placement_group()
        if pg is not None:
            with contextlib.suppress(Exception):
                ray.util.remove_placement_group(pg)

    def _spawn(
        self, d: Path, rank: int, argv: list[str], env: dict[str, str], workdir: str | None
    ) -> None:
        full = inherited_env(os.environ)
        full.update(env)
        if "CPOOL_CHECKPOINT_DIR" in env:
            full.update(resume_env(Path(env["CPOOL_CHECKPOINT_DIR"])))
        shim = [sys.executable, "-m", "computepool.backends.shim", str(d), str(rank)]
        shim.append("--watch-parent")
        raylet = os.environ.get("RAY_RAYLET_PID", "")
        if raylet.isdigit():  # a raylet that dies may leave its workers running: watch it too
            shim += ["--watch-pid", raylet]
        try:
            self.proc = subprocess.Popen(
                [*shim, "--", *argv],
                env=full,
                cwd=workdir or str(d),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            (d / f"rank-{rank}.log").write_text(f"cpool: cannot start the worker: {exc}\n")
            write_json(d / f"rank-{rank}.exit", {"rc": 127, "at": time.time()})

    def wait(self, poll_s: float = 0.05) -> tuple[int | None, float]:
        """Block until the rank ends: (return code, end time); (None, now) if the shim was lost."""
        self.started.wait()
        if self.refused or self.dir is None:
            return None, time.time()
        while True:
            st = rank_state(self.dir, self.rank)
            if st.rc is not None:
                if self.proc is not None:
                    self.proc.wait()
                return st.rc, float(st.ended_at or time.time())
            if self.proc is not None and self.proc.poll() is not None:
                st = rank_state(self.dir, self.rank)
                return (st.rc, float(st.ended_at or time.time()))
            time.sleep(poll_s)

    def ping(self) -> dict[str, object]:
        """Whether this rank was started (a control plane that recovers asks before it adopts)."""
        return {"started": self.started.is_set() and not self.refused, "pid": os.getpid()}

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self, grace_s: float) -> None:
        """SIGTERM the rank's process group now, SIGKILL it after ``grace_s``."""
        with self.lock:
            self.stopped = True
        self._signal(signal.SIGTERM)
        if self.stop_timer is None:
            self.stop_timer = threading.Timer(grace_s, self._signal, (signal.SIGKILL,))
            self.stop_timer.daemon = True
            self.stop_timer.start()

    def read_log(self, offset: int) -> bytes:
        """Up to ``LOG_CHUNK`` bytes of the rank's log from ``offset``."""
        if self.dir is None:
            return b""
        try:
            with open(self.dir / f"rank-{self.rank}.log", "rb") as f:
                f.seek(offset)
                return f.read(LOG_CHUNK)
        except OSError:
            return b""

    def finish(self, offset: int) -> bytes:
        """Kill what is left, return the rest of the log, remove the node-local directory."""
        with self.lock:
            self.stopped = True
        self._signal(signal.SIGKILL)
        if self.stop_timer is not None:
            self.stop_timer.cancel()
        rest = b""
        while chunk := self.read_log(offset + len(rest)):
            rest += chunk
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rest
