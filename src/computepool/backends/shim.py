"""The per-worker shim: the supervisor of one worker; runs its command and records its fate.

    python -m computepool.backends.shim ATTEMPT_DIR RANK --launch
    python -m computepool.backends.shim ATTEMPT_DIR RANK [--watch-parent [--watch-pid PID]] -- ARGV...

It claims the rank (``rank-R.claim``, created exclusively: a second shim for the same rank
exits at once), writes ``rank-R.pid`` (its pid, process group and kernel start time), runs the
command with stdout and stderr in ``rank-R.log``, and writes ``rank-R.exit`` (return code and
end time) once the worker's whole process tree is gone. It lives in its own session, so it
outlives a crashed control plane, which reads these files on restart to adopt or account for
the worker (containerd-shim and slurmstepd play the same part).

With ``--launch`` (the local backend) the command, its environment, working directory, sandbox
and limits come from ``rank-R.launch``, written by the control plane; a sandboxed worker runs
under bubblewrap as its tenant's user in a pid namespace of its own, and sees none of the
attempt directory: every record here is the supervisor's, none the worker's. SIGTERM (a
preemption) is forwarded to the worker's processes; SIGKILL of the shim takes the sandbox
with it (``--die-with-parent``). The shim is a child subreaper: when the worker's command ends,
whatever it left behind is killed and reaped before the exit record is written, and the end
time is that moment.

With ``--watch-parent`` (the Ray backend, whose worker actor starts the shim) the shim's
process group is killed as soon as its parent is gone, or the process ``--watch-pid`` names (the
Ray node's raylet): a Ray worker dies with its node or its driver, and the command it started
must not run on unseen.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
USAGE = "usage: shim ATTEMPT_DIR RANK (--launch | [--watch-parent [--watch-pid PID]] -- ARGV...)"


def write_json(path: Path, doc: dict) -> None:
    """Write atomically (a reader sees the whole file or none), readable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as f:
        f.write(json.dumps(doc))
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


def become_subreaper() -> None:
    """Orphaned descendants of the worker become our children, so we can kill and reap them."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children_of(pid: int) -> list[int]:
    """Child processes of ``pid`` (its threads' ``children`` files, else a scan of /proc)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return [
            int(c)
            for t in tasks
            for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()
        ]
    except (OSError, ValueError):
        pass
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def end_tree(timeout_s: float = 60.0) -> None:
    """Kill and reap every descendant left (the worker's leftovers) until none is left: a
    killed process's own children become ours (we are a subreaper) and go the same way."""
    me = os.getpid()
    deadline = time.monotonic() + timeout_s
    while True:
        for c in children_of(me):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(c, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not children_of(me):
                return
        if time.monotonic() > deadline:
            return
        time.sleep(0.002)


def pid_namespace_members(init: int) -> list[int]:
    """Every process in the pid namespace whose init (seen from here) is ``init``."""
    try:
        ns = os.readlink(f"/proc/{init}/ns/pid")
    except OSError:
        return []
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{d}/ns/pid") == ns:
                    out.append(int(d))
    return out


class Worker:
    """The worker process as the shim sees it: how to forward a stop to it."""

    def __init__(self, proc: subprocess.Popen, sandbox_init: int | None) -> None:
        self.proc, self.sandbox_init = proc, sandbox_init

    def forward(self, sig: int, late: bool = False) -> None:
        """Pass a stop on. ``late``: it came before the worker existed."""
        if self.sandbox_init is None:
            if late:  # else the worker shares our process group: the signal reached it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, sig)
            return
        for pid in pid_namespace_members(self.sandbox_init):
            if pid != self.sandbox_init:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)


def set_rlimits(pairs: list) -> None:
    for name, value in pairs:
        lim = getattr(resource, str(name))
        resource.setrlimit(lim, (int(value), int(value)))


def start_launch(spec: dict, log) -> Worker:
    """Start the command a ``rank-R.launch`` file describes (sandboxed or not)."""
    argv = [str(a) for a in spec["argv"]]
    env = {str(k): str(v) for k, v in spec["env"].items()}
    limits = list(spec.get("rlimits", []))
    if not spec.get("sandboxed"):
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=spec["cwd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: set_rlimits(limits)) if limits else None,
        )
        return Worker(proc, None)
    r, w = os.pipe()
    argv = [argv[0], "--info-fd", str(w), *argv[1:]]
    try:
        proc = subprocess.Popen(
            argv,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(w,),
            process_group=0,  # a SIGTERM for the shim must not reach bwrap (it would kill all)
            preexec_fn=(lambda: set_rlimits(limits)) if limits else None,
        )
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as info:
        raw = info.read(65536)
    try:
        init = int(json.loads(raw)["child-pid"])
    except (ValueError, KeyError, TypeError):
        init = None  # bwrap failed before the sandbox existed: its exit code says so
    return Worker(proc, init)


def _wait(child: subprocess.Popen) -> int:
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue


def _parse(argv: list[str]) -> tuple[str, str, bool, int | None, list[str] | None] | None:
    """(attempt dir, rank, watch parent, watch pid, argv or None for --launch)."""
    if len(argv) < 3:
        return None
    attempt_dir, rank, *body = argv
    if body == ["--launch"]:
        return attempt_dir, rank, False, None, None
    watch = bool(body) and body[0] == "--watch-parent"
    other = None
    body = body[1:] if watch else body
    if watch and len(body) > 1 and body[0] == "--watch-pid" and body[1].isdigit():
        other, body = int(body[1]), body[2:]
    command = body[1:]
    if not body or body[0] != "--" or not command:
        return None
    return attempt_dir, rank, watch, other, command


def read_epoch(path: Path) -> int | None:
    """The writer epoch on file (``LocalCluster.fence_epoch``); None: no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text.strip())


def deposed(launch_file: Path) -> bool:
    """Whether the control plane that wrote this launch record held an older writer lease
    than the one on file: a newer leader has taken over (and read the attempts) since, so a
    worker it did not see must not start. Checked before the rank is claimed."""
    try:
        fence = json.loads(launch_file.read_text()).get("writer_epoch")
        if not isinstance(fence, dict):
            return False
        on_file = read_epoch(Path(str(fence["file"])))
        return on_file is not None and on_file > int(fence["epoch"])
    except FileNotFoundError:  # no launch record: the start fails on its own below
        return False
    except (OSError, ValueError, KeyError, TypeError):  # cannot tell: do not run
        return True


def main(argv: list[str]) -> int:
    parsed = _parse(argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    attempt_dir, rank, watch, other, command = parsed
    parent = os.getppid()
    d = Path(attempt_dir)
    if command is None and deposed(d / f"rank-{rank}.launch"):
        return 0  # launched by a control plane that has lost the store since: never runs
    try:  # exactly one shim runs each rank, even if a recovering control plane spawns another
        os.close(os.open(d / f"rank-{rank}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
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
    worker: list[Worker] = []
    pending: list[int] = []  # a stop that came while the worker was being started

    def on_stop(sig: int, _frame: object) -> None:
        for w in worker:
            w.forward(sig)
        if not worker:
            pending.append(sig)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    become_subreaper()
    fd = os.open(d / f"rank-{rank}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with open(fd, "ab", buffering=0) as log:
        try:
            if command is None:
                spec = json.loads((d / f"rank-{rank}.launch").read_text())
                w = start_launch(spec, log)
            else:
                w = Worker(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), None)
        except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError) as exc:
            what = command[0] if command else "the worker"
            log.write(f"cpool: cannot start {what!r}: {exc}\n".encode())
            write_json(d / f"rank-{rank}.exit", {"rc": 127, "at": time.time()})
            return 127
        worker.append(w)
        for sig in pending:
            w.forward(sig, late=True)
        rc = wait_watching(w.proc, parent, other) if watch else _wait(w.proc)
    end_tree()
    write_json(d / f"rank-{rank}.exit", {"rc": rc, "at": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
