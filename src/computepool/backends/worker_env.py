"""The worker contract every live backend keeps: what a started worker is told.

A worker of a job learns where it runs and what it is from its environment: the stack's device
variable (``CUDA_VISIBLE_DEVICES``, ``ASCEND_RT_VISIBLE_DEVICES``, ...) and ``CPOOL_*``
variables (job id, tenant, rank, world size, node, flavor, accelerator, attempt, checkpoint
directory and, when there is one, the newest checkpoint to resume from). The local backend
and the Ray backend build it with the same functions, so a job runs unchanged on either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept out of a Ray worker's start-up imports
    from computepool.model.accelerator import AcceleratorType

#: Variables of the control plane (or of the Ray node) that a worker must not inherit.
SERVER_ONLY_ENV = ("CPOOL_",)


@dataclass(frozen=True)
class Launch:
    """What a backend needs to start one job; given by the store for a workload index."""

    key: str
    argv: tuple[str, ...]
    tenant: str = ""
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None


def latest_checkpoint(d: Path) -> Path | None:
    """The newest file under ``d`` (partial ``*.tmp`` files aside), or None."""
    files = [p for p in d.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name)) if files else None


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
) -> dict[str, str]:
    """The variables one worker gets on top of ``inherited_env`` (the job's own ``env`` too)."""
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
    return env


def resume_env(checkpoint_dir: Path) -> dict[str, str]:
    """``CPOOL_RESUME_FROM`` when the checkpoint directory holds a checkpoint (made if missing)."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    last = latest_checkpoint(checkpoint_dir)
    return {} if last is None else {"CPOOL_RESUME_FROM": str(last)}
