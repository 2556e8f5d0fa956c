"""What the local backend's shim runs for one rank: the ``rank-R.launch`` record.

The control plane writes it (owner-only, in the attempt directory the worker never sees); the
shim reads it. Sandboxed: the command is bubblewrap's (``backends/sandbox.py``) with the
worker's environment passed through ``env -i``, so no variable of the tenant's reaches a
process running as root; the job's directories are made and handed to the tenant's uid.
Unsandboxed: the command itself, run as the server's user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from computepool.backends.sandbox import (
    DEFAULT_PATH,
    SANDBOX_CHECKPOINT,
    SANDBOX_WORK,
    Limits,
    SandboxStatus,
    bwrap_argv,
)
from computepool.backends.worker_env import Launch


@dataclass(frozen=True)
class JobDirs:
    """The job's own directories on the host (kept across attempts)."""

    work: Path
    checkpoint: Path


def make_private_dir(d: Path, uid: int | None = None) -> None:
    """``d`` exists, mode 0700, owned by ``uid`` when one is given (the tenant's user)."""
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if uid is not None:
        st = d.lstat()
        if st.st_uid != uid or st.st_gid != uid:
            os.chown(d, uid, uid, follow_symlinks=False)
    os.chmod(d, 0o700, follow_symlinks=False)


def job_dirs(work_root: Path, checkpoint_root: Path, key: str, uid: int | None) -> JobDirs:
    dirs = JobDirs(work_root / key, checkpoint_root / key)
    make_private_dir(dirs.work, uid)
    make_private_dir(dirs.checkpoint, uid)
    return dirs


def in_sandbox(host: str, dirs: JobDirs) -> str:
    """A host path under the job's checkpoint or work directory as the worker sees it."""
    for root, inside in ((dirs.checkpoint, SANDBOX_CHECKPOINT), (dirs.work, SANDBOX_WORK)):
        try:
            rel = Path(host).relative_to(root)
        except ValueError:
            continue
        return inside if rel == Path(".") else f"{inside}/{rel.as_posix()}"
    return host


def rank_launch(
    launch: Launch,
    env: dict[str, str],
    dirs: JobDirs,
    sandbox: SandboxStatus | None,
    uid: int | None,
    limits: Limits,
    datasets: list[tuple[str, str]],
    gang: bool = False,
) -> dict:
    """The ``rank-R.launch`` record for one rank whose full environment is ``env``. A rank of
    a ``gang`` of several workers shares the host's network (its ranks must reach each other;
    docs/security.md says what that opens); a lone worker keeps a network of its own."""
    rl = limits.rlimits()
    if sandbox is None or not sandbox.enabled or uid is None:
        cwd = launch.workdir or str(dirs.work)
        return {
            "sandboxed": False,
            "argv": list(launch.argv),
            "env": env,
            "cwd": cwd,
            "rlimits": rl,
        }
    env = {"PATH": DEFAULT_PATH, "HOME": SANDBOX_WORK, **env}
    for k in ("CPOOL_CHECKPOINT_DIR", "CPOOL_RESUME_FROM", "RANK_TABLE_FILE"):
        if k in env:
            env[k] = in_sandbox(env[k], dirs)
    extra = [launch.workdir] if launch.workdir else []
    argv = bwrap_argv(
        sandbox.config,
        uid,
        env,
        launch.argv,
        work=str(dirs.work),
        checkpoint=str(dirs.checkpoint),
        cwd=launch.workdir or SANDBOX_WORK,
        datasets=datasets,
        extra_rw=extra,
        share_network=gang,
    )
    return {"sandboxed": True, "argv": argv, "env": {}, "cwd": "/", "rlimits": rl}
