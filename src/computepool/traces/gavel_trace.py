"""Read Gavel's tab-separated ``.trace`` files (old 7-column and new 9/10-column layouts).

Layouts (detected per line by the number of tab-separated columns):

* 7 (Gavel 2019, ``traces/msr/seed=*/<vc>.trace``): ``job_type, command, num_steps_arg,
  needs_data_dir, total_steps, arrival_time_s, scale_factor``
* 9 (Gavel 2020): ``job_type, command, num_steps_arg, needs_data_dir, total_steps,
  scale_factor, priority_weight, SLO, arrival_time_s``
* 10 (Gavel HEAD, ``traces/physical_cluster/*.trace``): ``job_type, command, working_directory,
  num_steps_arg, needs_data_dir, total_steps, scale_factor, priority_weight, SLO,
  arrival_time_s``

``SLO`` is a factor on the job's isolated V100 duration (``-1`` = none); it becomes the
``deadline`` column (seconds after arrival) when the throughput table knows the job.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload
from computepool.traces.columns import WorkloadColumns, resolve_throughputs
from computepool.traces.errors import TraceError, parse_float, parse_int

LAYOUTS: dict[int, tuple[str, ...]] = {
    7: ("job_type", "command", "num_steps_arg", "needs_data_dir", "total_steps", "arrival_time_s", "scale_factor"),
    9: (
        "job_type", "command", "num_steps_arg", "needs_data_dir", "total_steps", "scale_factor",
        "priority_weight", "SLO", "arrival_time_s",
    ),
    10: (
        "job_type", "command", "working_directory", "num_steps_arg", "needs_data_dir", "total_steps",
        "scale_factor", "priority_weight", "SLO", "arrival_time_s",
    ),
}  # fmt: skip


class _Row(NamedTuple):
    job_type: str
    scale_factor: int
    total_steps: float
    arrival: float
    weight: float
    deadline: float


def _row(
    cells: list[str], file: str, line: int, known: frozenset[str], throughputs: Throughputs
) -> _Row:
    names = LAYOUTS.get(len(cells))
    if names is None:
        raise TraceError(
            file,
            f"has {len(cells)} tab-separated columns; expected 7 (old Gavel layout), 9 or 10 (new)",
            line,
            "columns",
        )
    raw = dict(zip(names, cells, strict=True))
    job_type = raw["job_type"].strip()
    if job_type not in known:
        raise TraceError(file, f"unknown job type {job_type!r}", line, "job_type")
    if raw["needs_data_dir"].strip() not in ("0", "1"):
        raise TraceError(file, f"{raw['needs_data_dir']!r} is not 0 or 1", line, "needs_data_dir")
    sf = parse_int(raw["scale_factor"], file, line, "scale_factor", minimum=1)
    steps = parse_float(raw["total_steps"], file, line, "total_steps", minimum=0)
    arrival = parse_float(raw["arrival_time_s"], file, line, "arrival_time_s", minimum=0)
    weight, slo = 1.0, -1.0
    if "priority_weight" in raw:
        weight = parse_float(raw["priority_weight"], file, line, "priority_weight")
        if weight <= 0:
            raise TraceError(file, f"{raw['priority_weight']} must be > 0", line, "priority_weight")
        slo = parse_float(raw["SLO"], file, line, "SLO")
    deadline = math.nan
    if slo > 0:
        v100 = throughputs.rate(job_type, sf, "V100")
        if v100 > 0:
            deadline = slo * steps / v100
    return _Row(job_type, sf, steps, arrival, weight, deadline)


def _read_into(
    cols: WorkloadColumns, path: Path, tenant: str, throughputs: Throughputs, known: frozenset[str]
) -> None:
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(file, f"cannot read: {exc.strerror or exc}") from None
    k = 0
    for n, raw_line in enumerate(text.splitlines(), start=1):
        if not raw_line.strip():
            continue
        r = _row(raw_line.split("\t"), file, n, known, throughputs)
        cols.add(
            job_id=f"{tenant}/{k}" if tenant != "default" else str(k),
            job_type=r.job_type,
            scale_factor=r.scale_factor,
            total_steps=r.total_steps,
            arrival=r.arrival,
            tenant=tenant,
            weight=r.weight,
            deadline=r.deadline,
        )
        k += 1


def read_gavel_trace(
    path: str | Path,
    throughputs: Throughputs | None = None,
    tenant: str = "default",
) -> Workload:
    """One Gavel ``.trace`` file; ids are ``0, 1, ...`` in file order (``<tenant>/<n>`` if named)."""
    t = resolve_throughputs(throughputs)
    cols = WorkloadColumns(name=str(path))
    _read_into(cols, Path(path), tenant, t, frozenset(t.job_types))
    return cols.build()


def read_gavel_trace_dir(path: str | Path, throughputs: Throughputs | None = None) -> Workload:
    """Every ``*.trace`` in a folder (e.g. ``msr/seed=0``), one tenant per file (its stem: the VC)."""
    t = resolve_throughputs(throughputs)
    folder = Path(path)
    files = sorted(folder.glob("*.trace"))
    if not files:
        raise TraceError(str(folder), "no *.trace files in this folder")
    cols = WorkloadColumns(name=str(folder))
    known = frozenset(t.job_types)
    for f in files:
        _read_into(cols, f, f.stem, t, known)
    return cols.build()
