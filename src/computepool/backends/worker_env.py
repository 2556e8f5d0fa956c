"""The worker contract every live backend keeps: what a started worker is told.

A worker of a job learns where it runs and what it is from its environment: the stack's device
variable (``CUDA_VISIBLE_DEVICES``, ``ASCEND_RT_VISIBLE_DEVICES``, ...) and ``CPOOL_*``
variables (job id, tenant, rank, world size, node, flavor, accelerator, attempt, checkpoint
directory and, when there is one, the newest checkpoint to resume from), and the gang's
rendezvous (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ... : ``backends/rendezvous.py``). The local backend
and the Ray backend build it with the same functions, so a job runs unchanged on either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from computepool.backends.rendezvous import Master, rendezvous_env

if TYPE_CHECKING:  # kept out of a Ray worker's start-up imports
    from computepool.model.accelerator import AcceleratorType

#: Variables of the control plane (or of the Ray node) that a worker must not inherit.
SERVER_ONLY_ENV = ("CPOOL_",)
#: A job's command and environment together, and each single string (the kernel's own limit
#: on one argument is 128 KiB): larger ones fail the job at its start.
MAX_LAUNCH_BYTES = 1 << 20
MAX_STRING_BYTES = (128 << 10) - 1
#: Files looked at to find the newest checkpoint (a directory of millions is not walked).
MAX_CHECKPOINT_FILES = 100_000
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Launch:
    """What a backend needs to start one job; given by the store for a workload index."""

    key: str
    argv: tuple[str, ...]
    tenant: str = ""
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    #: The tenant's id in the store (its workers' uid in a sandbox); -1: unknown.
    tenant_id: int = -1
    #: Names of the shared datasets the job was granted.
    datasets: tuple[str, ...] = ()
    #: Per-worker limits the job asked for: (name, value) of ``sandbox.Limits``' fields.
    limits: tuple[tuple[str, int], ...] = ()


def launch_problem(launch: Launch) -> str:
    """Why ``launch`` cannot start (a stored spec is hostile input too); "" when it can."""
    if not launch.argv:
        return "the command is empty"
    strings = [*launch.argv, *(k for k, _ in launch.env), *(v for _, v in launch.env)]
    if any("\0" in a for a in strings) or "\0" in (launch.workdir or ""):
        return "the command, environment or workdir contains a NUL byte"
    sizes = [len(a.encode(errors="surrogateescape")) for a in strings]
    if max(sizes) > MAX_STRING_BYTES:
        return f"an argument or environment value is longer than {MAX_STRING_BYTES} bytes"
    if sum(sizes) + 2 * len(sizes) > MAX_LAUNCH_BYTES:
        return f"the command and environment together exceed {MAX_LAUNCH_BYTES} bytes"
    bad = next((k for k, _ in launch.env if not _ENV_NAME.match(k)), None)
    if bad is not None:
        return f"environment variable name {bad[:64]!r} is not valid"
    if "=" in launch.argv[0]:
        return "the program name contains '='"
    return ""


def workdir_problem(workdir: str | None) -> str:
    """Why the job's ``workdir`` cannot be its working directory; "" when it can."""
    if workdir is None:
        return ""
    if not workdir.startswith("/"):
        return f"workdir {workdir[:256]!r} is not an absolute path"
    if not os.path.exists(workdir):
        return f"workdir {workdir[:256]!r} does not exist"
    if not os.path.isdir(workdir):
        return f"workdir {workdir[:256]!r} is not a directory"
    return ""


def latest_checkpoint(d: Path, limit: int = MAX_CHECKPOINT_FILES) -> Path | None:
    """The newest regular file under ``d`` (partial ``*.tmp`` files aside), or None. Symbolic
    links are neither followed nor returned (the directory is the tenant's), and at most
    ``limit`` entries are looked at."""
    best: tuple[int, str] | None = None
    found: Path | None = None
    seen = 0
    stack = [str(d)]
    while stack and seen < limit:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            seen += 1
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False) and not e.name.endswith(".tmp"):
                    key = (e.stat(follow_symlinks=False).st_mtime_ns, e.name)
                    if best is None or key > best:
                        best, found = key, Path(e.path)
            except OSError:
                continue
    return found


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The process environment a worker starts from: all but the control plane's own."""
    return {k: v for k, v in environ.items() if not k.startswith(SERVER_ONLY_ENV)}


def job_env(
    launch: Launch,
    *,
    rank: int,
    world_size: int,
    node: str,
    flavor: str,
    accelerator: AcceleratorType,
    devices: tuple[int, ...],
    checkpoint_dir: str,
    attempt: int,
    nodes: tuple[str, ...] = (),
    master: Master | None = None,
) -> dict[str, str]:
    """The variables one worker gets on top of ``inherited_env`` (the job's own ``env`` too).
    With ``master`` (and ``nodes``: each rank's node), the gang's rendezvous variables too;
    the pool's values win over the job's own."""
    env = dict(launch.env)
    visible = ",".join(str(d) for d in devices)
    env[accelerator.visible_devices_env] = visible
    env.update(
        {
            "CPOOL_VISIBLE_DEVICES": visible,
            "CPOOL_JOB_ID": launch.key,
            "CPOOL_TENANT": launch.tenant,
            "CPOOL_WORKER_RANK": str(rank),
            "CPOOL_WORLD_SIZE": str(world_size),
            "CPOOL_NODE": node,
            "CPOOL_FLAVOR": flavor,
            "CPOOL_ACCELERATOR": accelerator.name,
            "CPOOL_CHECKPOINT_DIR": checkpoint_dir,
            "CPOOL_ATTEMPT": str(attempt),
        }
    )
    if master is not None:
        if len(nodes) != world_size:
            raise ValueError(f"{len(nodes)} nodes given for a gang of {world_size}")
        env.update(rendezvous_env(rank, nodes, master, accelerator.stack))
    return env


def resume_env(checkpoint_dir: Path) -> dict[str, str]:
    """``CPOOL_RESUME_FROM`` when the checkpoint directory holds a checkpoint (made if missing)."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    last = latest_checkpoint(checkpoint_dir)
    return {} if last is None else {"CPOOL_RESUME_FROM": str(last)}
