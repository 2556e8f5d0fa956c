"""Worker sandboxes: each tenant's workers run as an unprivileged user of that tenant, in a
filesystem view of their own (bubblewrap), with limits.

The shim (running as the server's user, root) starts ``bwrap`` with the job's view: read-only
system directories (``/usr``, ``/etc``, ...), the job's work directory and checkpoint directory
read-write, nothing else (the store, the data directory, other tenants' runs, logs and
checkpoints do not exist in it). bwrap runs as root without a user namespace (so it can bind
directories under a 0700 data directory) and unshares the pid, IPC, UTS, cgroup and (unless
the operator shares it) network namespaces; inside, ``setpriv`` drops to the tenant's uid/gid
with no capabilities and ``no_new_privs`` before anything of the tenant's runs, and ``env -i``
gives the worker exactly its environment (nothing of the tenant's reaches a root process).

``probe`` tells, once at start, whether this machine can do it (root, bwrap, setpriv, kernel
namespaces) and which limit mechanism applies (rlimits; whether cgroup v2 is delegated).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Where the job's own directories appear inside its sandbox.
SANDBOX_WORK = "/cpool/work"
SANDBOX_CHECKPOINT = "/cpool/checkpoint"
#: System directories bound read-only when they exist (symlinks are recreated as symlinks).
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
SETPRIV = "/usr/bin/setpriv"
ENV = "/usr/bin/env"


@dataclass(frozen=True)
class SandboxConfig:
    """How the operator wants workers isolated (``cpool serve --sandbox ...``)."""

    #: ``auto``: sandbox when the machine can; ``on``: refuse to start without; ``off``: never.
    mode: str = "auto"
    #: Run workers of several tenants even without a sandbox (they can reach each other).
    allow_unsandboxed: bool = False
    #: Tenant with store id T runs as uid = gid = uid_base + T (no /etc/passwd entry needed).
    uid_base: int = 200_000
    uid_count: int = 100_000
    bwrap: str = "/usr/bin/bwrap"
    #: Share the host's network with workers (default: each worker has a network of its own
    #: with only loopback).
    share_network: bool = False
    #: Extra read-only directories every worker sees (e.g. a Python installation).
    read_only: tuple[str, ...] = ()
    #: Shared datasets by name -> host directory; a job that lists the dataset sees it
    #: read-only at /cpool/datasets/NAME.
    datasets: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SandboxStatus:
    """What the probe found; shown in the log, ``/healthz`` and ``/v1/pool``."""

    enabled: bool
    #: Why it is off (empty when on).
    reason: str = ""
    #: What enforces the workers' limits (``limits_mechanism``).
    limits: str = "rlimits"
    allow_unsandboxed: bool = False
    config: SandboxConfig = field(default_factory=SandboxConfig)

    @property
    def warning(self) -> str:
        if self.enabled:
            return ""
        if self.allow_unsandboxed:
            return (
                f"workers are NOT sandboxed ({self.reason}): they run as the server's user "
                "and every tenant's job can read and change the others' files and the store"
            )
        return (
            f"workers are not sandboxed ({self.reason}): only one tenant's jobs may run; "
            "start the server with --allow-unsandboxed to run several"
        )

    def public(self) -> dict:
        return {
            "sandboxed": self.enabled,
            "reason": self.reason,
            "limits": self.limits,
            "allow_unsandboxed": self.allow_unsandboxed,
            "warning": self.warning,
        }


@dataclass(frozen=True)
class Limits:
    """Per-worker limits (None: not limited)."""

    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    pids: int | None = None
    file_bytes: int | None = None

    def rlimits(self) -> list[tuple[str, int]]:
        """(RLIMIT name, value) pairs the shim sets on the sandbox before it starts."""
        pairs = [
            ("RLIMIT_AS", self.memory_bytes),
            ("RLIMIT_CPU", self.cpu_seconds),
            ("RLIMIT_NPROC", self.pids),
            ("RLIMIT_FSIZE", self.file_bytes),
        ]
        return [(n, int(v)) for n, v in pairs if v is not None]


def cgroup_v2_delegated(cgroup_root: Path = Path("/sys/fs/cgroup")) -> bool:
    """The unified hierarchy is mounted with the memory, pids and cpu controllers ours to use."""
    ctl = cgroup_root / "cgroup.subtree_control"
    try:
        have = set(ctl.read_text().split())
    except OSError:
        return False
    return {"memory", "pids", "cpu"} <= have and os.access(ctl, os.W_OK)


def limits_mechanism(cgroup_root: Path = Path("/sys/fs/cgroup")) -> str:
    """What enforces a worker's limits here (said at start): rlimits, and whether cgroup v2 is
    delegated (its per-job limits are not written yet)."""
    if cgroup_v2_delegated(cgroup_root):
        return "rlimits (cgroup v2 is delegated here but not used yet)"
    return "rlimits (no cgroup v2 delegation)"


def _uid_range_taken(cfg: SandboxConfig) -> str:
    hi = cfg.uid_base + cfg.uid_count
    for p in pwd.getpwall():
        if cfg.uid_base <= p.pw_uid < hi:
            return f"uid {p.pw_uid} ({p.pw_name}) is inside the sandbox uid range"
    return ""


def probe(cfg: SandboxConfig) -> SandboxStatus:
    """Can workers be sandboxed here? Tries a real sandbox once (a few ms)."""
    limits = limits_mechanism()

    def off(reason: str) -> SandboxStatus:
        if cfg.mode == "on":
            raise RuntimeError(f"--sandbox on: workers cannot be sandboxed here: {reason}")
        return SandboxStatus(False, reason, limits, cfg.allow_unsandboxed, cfg)

    if cfg.mode == "off":
        return off("sandbox turned off by the operator (--sandbox off)")
    if os.geteuid() != 0:
        return off("the server does not run as root, so it cannot run workers as other users")
    for tool in (cfg.bwrap, SETPRIV, ENV):
        if shutil.which(tool) is None:
            return off(f"{tool} is missing (Debian package bubblewrap / util-linux / coreutils)")
    taken = _uid_range_taken(cfg)
    if taken:
        return off(taken + "; choose another --sandbox-uid-base")
    uid = cfg.uid_base + cfg.uid_count - 1
    argv = bwrap_argv(cfg, uid, {}, ["/bin/true"], work=None, checkpoint=None)
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10, env={"PATH": DEFAULT_PATH})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return off(f"bwrap did not run: {exc}")
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip()[:300]
        return off(f"bwrap failed (kernel pid/mount namespaces?): {err or r.returncode}")
    return SandboxStatus(True, "", limits, cfg.allow_unsandboxed, cfg)


def tenant_uid(cfg: SandboxConfig, tenant_id: int) -> int:
    """The uid (and gid) a tenant's workers run as; ValueError outside the configured range."""
    if not 0 <= tenant_id < cfg.uid_count - 1:  # the last uid is the probe's
        raise ValueError(
            f"tenant id {tenant_id} is beyond the sandbox uid range "
            f"({cfg.uid_base}..{cfg.uid_base + cfg.uid_count - 2})"
        )
    return cfg.uid_base + tenant_id


def _system_binds() -> list[str]:
    out: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    return out


def _parents(d: str) -> list[str]:
    """Arguments that make ``d``'s parents (below /) traversable (bwrap makes them 0700)."""
    out: list[str] = []
    for parent in reversed(Path(d).parents[:-1]):
        out += ["--perms", "0755", "--dir", str(parent)]
    return out


def bwrap_argv(
    cfg: SandboxConfig,
    uid: int,
    env: Mapping[str, str],
    argv: Sequence[str],
    *,
    work: str | None,
    checkpoint: str | None,
    cwd: str = SANDBOX_WORK,
    datasets: Sequence[tuple[str, str]] = (),
    extra_rw: Sequence[str] = (),
    share_network: bool = False,
) -> list[str]:
    """The command that runs ``argv`` as ``uid`` in its sandbox with exactly ``env``.

    ``work`` and ``checkpoint`` (host directories) appear read-write at ``SANDBOX_WORK`` and
    ``SANDBOX_CHECKPOINT``; ``extra_rw`` (a tenant's own work directory) at the same path;
    ``datasets`` ((name, host dir)) read-only under /cpool/datasets. ``share_network``: the
    host's network (a gang's ranks), as ``cfg.share_network`` gives it to every worker.
    """
    out = [cfg.bwrap, "--clearenv", "--setenv", "PATH", DEFAULT_PATH]
    out += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not (cfg.share_network or share_network):
        out.append("--unshare-net")
    out += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
        out += ["--cap-add", cap]
    out += _system_binds()
    # the private /tmp first: binds below it (a Python under /tmp) must land on top of it
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for d in cfg.read_only:  # its parents made traversable (a Python under a 0700 home)
        out += _parents(d)
        out += ["--ro-bind", d, d]
    out += ["--perms", "0755", "--dir", "/cpool"]
    if work is not None:
        out += ["--bind", work, SANDBOX_WORK]
    if checkpoint is not None:
        out += ["--bind", checkpoint, SANDBOX_CHECKPOINT]
    if datasets:
        out += ["--perms", "0755", "--dir", "/cpool/datasets"]
    for name, host in datasets:
        out += ["--ro-bind", host, f"/cpool/datasets/{name}"]
    for d in extra_rw:  # at its own path, its parents made traversable
        out += _parents(d)
        out += ["--bind", d, d]
    out += ["--", SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    out += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    # the working directory is entered as the tenant (bwrap, root without capabilities, may
    # not enter the tenant's 0700 directories)
    chdir = [f"--chdir={cwd}"] if work is not None or extra_rw else []
    out += [ENV, "-i", *chdir, *(f"{k}={v}" for k, v in env.items()), *argv]
    return out
