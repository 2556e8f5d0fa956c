"""The live pool as a what-if: a snapshot (``cpool snapshot``) turned into simulation inputs,
and each job's predicted start and finish (``cpool simulate --from state.json``).

Running jobs come first, in the order they started, pinned to the accelerator type they run
on, with the work they have left; waiting jobs follow in submission order. Tenants keep their
quotas and cohorts; a budget is what is left of it. Cordoned nodes are left out and
``--add REGION/ACCEL=NxPER`` adds nodes, so "what if 4 more H800 servers came" is one flag.
What the simulation cannot know: the live pool's own round timing and start overheads
(a prediction is good to about a round), and jobs submitted after the snapshot.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from computepool.catalog.node_pool import pool_of_nodes
from computepool.catalog.throughputs import load_throughputs
from computepool.model.pool import Node
from computepool.model.workload import Workload
from computepool.sim.metrics import SimResult
from computepool.sim.runner import Inputs
from computepool.traces.errors import TraceError
from computepool.traces.jobfile import job_from_record
from computepool.traces.tenants import read_tenants_section

#: Fields a snapshot's job record carries beside the workload file's job fields.
SNAPSHOT_JOB_FIELDS = ("status", "submitted_at", "started_at", "flavor", "steps_done")
MAX_JOBS = 1_000_000
MAX_NODES = 200_000
_ADD = re.compile(r"^(?P<region>[\w.-]+)/(?P<accel>[\w.-]+)=(?P<n>\d+)x(?P<per>\d+)$")


class _NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    region: str = Field(min_length=1, max_length=64)
    accelerator: str = Field(min_length=1, max_length=64)
    count: int = Field(ge=1, le=1024)
    island: str = Field("", max_length=128)
    cpu_milli: int = Field(0, ge=0)
    memory_mib: int = Field(0, ge=0)


class _PoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    nodes: list[_NodeIn] = Field(min_length=1, max_length=MAX_NODES)
    cordoned: list[str] = Field(default_factory=list, max_length=MAX_NODES)


class SnapshotFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern=r"^computepool\.snapshot$")
    version: int = Field(ge=1, le=1)
    taken_at: float = Field(allow_inf_nan=False)
    settings: dict[str, Any] = Field(default_factory=dict)
    pool: _PoolIn
    tenants: list[dict[str, Any]] = Field(default_factory=list)
    jobs: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_JOBS)


@dataclass(frozen=True)
class WhatIf:
    inputs: Inputs
    #: Snapshot job ids in workload order, and whether each was running at the snapshot.
    ids: list[str]
    running: np.ndarray
    snapshot: SnapshotFile


def read_snapshot(path: str | Path) -> SnapshotFile:
    file = str(path)
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise TraceError(file, f"cannot read: {exc.strerror or exc}", 1, "file") from None
    except json.JSONDecodeError as exc:
        raise TraceError(file, f"not valid JSON: {exc.msg}", exc.lineno, "json") from None
    try:
        return SnapshotFile.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "snapshot"
        raise TraceError(file, str(err["msg"]), 1, field) from None


def parse_add(text: str) -> tuple[str, str, int, int]:
    """``REGION/ACCEL=NxPER`` (e.g. ``cn-ulanqab/H800=4x8``) -> (region, accel, N, PER)."""
    m = _ADD.match(text.strip())
    if not m or not 1 <= int(m["n"]) <= 100_000 or not 1 <= int(m["per"]) <= 1024:
        raise ValueError(
            f"--add {text!r}: expected REGION/ACCEL=NxPER with 1 <= N <= 100000 nodes of "
            "1 <= PER <= 1024 accelerators, e.g. cn-ulanqab/H800=4x8"
        )
    return m["region"], m["accel"], int(m["n"]), int(m["per"])


def _nodes(snap: SnapshotFile, add: list[str]) -> list[Node]:
    cordoned = set(snap.pool.cordoned)
    nodes = [Node(**n.model_dump()) for n in snap.pool.nodes if n.name not in cordoned]
    for k, text in enumerate(add):
        region, accel, n, per = parse_add(text)
        nodes += [
            Node(f"added{k}-{accel.lower()}-{i}", region, accel, per, f"added{k}") for i in range(n)
        ]
    return nodes


def _tenants(snap: SnapshotFile, file: str) -> dict:
    section = []
    for t in snap.tenants:
        t = dict(t)
        hours, usd = t.pop("spent_accel_hours", 0.0) or 0.0, t.pop("spent_usd", 0.0) or 0.0
        if t.get("budget_accel_hours") is not None:
            t["budget_accel_hours"] = max(float(t["budget_accel_hours"]) - float(hours), 0.0)
        if t.get("budget_usd") is not None:
            t["budget_usd"] = max(float(t["budget_usd"]) - float(usd), 0.0)
        section.append(t)
    return read_tenants_section(section, file)


def whatif_inputs(
    snap: SnapshotFile, file: str, add: list[str] | None = None, throughputs: str = "gavel"
) -> WhatIf:
    pool = pool_of_nodes(
        snap.pool.name, _nodes(snap, add or []), description=f"snapshot of {snap.pool.name}"
    )
    tp = load_throughputs(throughputs, accelerators=pool.accelerators)
    running = [j for j in snap.jobs if j.get("status") == "running"]
    waiting = [j for j in snap.jobs if j.get("status") != "running"]
    running.sort(key=lambda j: (j.get("started_at") or 0.0, str(j.get("id"))))
    waiting.sort(key=lambda j: (j.get("submitted_at") or 0.0, str(j.get("id"))))
    ordered = running + waiting
    jobs = []
    for i, rec in enumerate(ordered):
        body = {k: v for k, v in rec.items() if k not in SNAPSHOT_JOB_FIELDS}
        body["arrival"] = i * 1e-3  # their order, all present at the snapshot's time 0
        body["total_steps"] = max(float(body.get("total_steps", 0.0)), 1e-6)
        jobs.append(job_from_record(body, i, tp, file))
    w = Workload.from_jobs(jobs, name=f"snapshot {snap.pool.name}")
    inputs = Inputs(pool, w, tp, None, _tenants(snap, file) or None)
    flags = np.array([j.get("status") == "running" for j in ordered], dtype=bool)
    return WhatIf(inputs, [str(j.get("id")) for j in ordered], flags, snap)


def predictions(what: WhatIf, res: SimResult) -> list[dict[str, Any]]:
    """Per snapshot job: predicted start and finish, seconds after the snapshot (None: not
    within the simulated time)."""

    def sec(v: float) -> float | None:
        return None if not np.isfinite(v) else round(float(v), 3)

    out = []
    for k, job_id in enumerate(what.ids):
        out.append(
            {
                "id": job_id,
                "tenant": what.inputs.workload.tenants[int(what.inputs.workload.tenant[k])],
                "running": bool(what.running[k]),
                "accelerators": int(what.inputs.workload.scale_factor[k]),
                "start_s": 0.0 if what.running[k] else sec(res.first_start[k]),
                "end_s": sec(res.end[k]),
            }
        )
    return out
