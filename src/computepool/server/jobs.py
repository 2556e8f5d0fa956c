"""Stored jobs -> the scheduler's ``Job`` and the backend's ``Launch`` (pure conversions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from computepool.backends.local import Launch
from computepool.model.job import Dataset, Job, JobKind


def _argv(command: str | list[str]) -> tuple[str, ...]:
    return ("/bin/sh", "-c", command) if isinstance(command, str) else tuple(command)


def to_job(
    job_id: int, tenant: str, tenant_weight: float, spec: Mapping[str, Any], submitted_at: float
) -> Job:
    return Job(
        id=str(job_id),
        tenant=tenant,
        kind=JobKind(spec.get("kind", "train")),
        job_type=spec.get("job_type", "generic"),
        workers=int(spec.get("workers", 1)),
        accel_per_worker=float(spec.get("accelerators_per_worker", 1)),
        stacks=tuple(spec.get("stacks", ())),
        accelerators=tuple(spec.get("accelerator_types", ())),
        total_steps=float(spec.get("work", 3600.0)),
        arrival=submitted_at,
        priority=int(spec.get("priority", 0)),
        weight=float(spec.get("weight", 1.0)) * tenant_weight,
        preemptible=bool(spec.get("preemptible", True)),
        deadline=_deadline(spec.get("deadline_hours")),
        datasets=tuple(Dataset(**d) for d in spec.get("datasets", ())),
        command=" ".join(_argv(spec["command"])),
        env=tuple(sorted(spec.get("env", {}).items())),
    )


def _deadline(hours: object) -> float | None:
    """A stored ``deadline_hours`` as seconds after arrival (None: none)."""
    if isinstance(hours, int | float) and not isinstance(hours, bool) and 0 < hours < 1e6:
        return float(hours) * 3600.0
    return None


_GIB = 1 << 30


def launch_limits(raw: object) -> tuple[tuple[str, int], ...]:
    """A stored spec's ``limits`` as ``sandbox.Limits`` fields (what does not parse is left
    out: the pool's own limits still hold)."""
    if not isinstance(raw, Mapping):
        return ()
    scale = {"memory_gib": ("memory_bytes", _GIB), "cpu_seconds": ("cpu_seconds", 1)}
    scale |= {"pids": ("pids", 1), "file_size_gib": ("file_bytes", _GIB)}
    out = []
    for k, (name, unit) in scale.items():
        v = raw.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 2**50:
            out.append((name, max(1, int(v * unit))))
    return tuple(out)


def to_launch(job_id: int, tenant: str, spec: Mapping[str, Any], tenant_id: int = -1) -> Launch:
    datasets = spec.get("datasets", ())
    return Launch(
        key=str(job_id),
        argv=_argv(spec["command"]),
        tenant=tenant,
        env=tuple(sorted(spec.get("env", {}).items())),
        workdir=spec.get("workdir"),
        tenant_id=tenant_id,
        datasets=tuple(
            str(d.get("name")) for d in datasets if isinstance(d, Mapping) and d.get("name")
        ),
        limits=launch_limits(spec.get("limits")),
    )


def shape(spec: Mapping[str, Any]) -> tuple[int, int]:
    return int(spec.get("workers", 1)), int(spec.get("accelerators_per_worker", 1))
