"""Read the Philly jobs table used by Pollux and Sia (``philly_jobs_pollux_sia.csv``).

Columns ``timestamp,duration,num_gpus,gpu_time,cluster``: submit time (``YYYY-MM-DD HH:MM:SS``,
no zone; read as UTC), run time in seconds, GPUs, GPU-seconds, Philly virtual cluster. Each row
becomes a ``generic`` job of ``num_gpus`` accelerators whose ``total_steps`` is its duration times
the generic rate of a reference accelerator (so it runs exactly ``duration`` seconds there),
the VC is its tenant, and arrivals are seconds after the earliest timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from computepool.model.throughput import GENERIC, Throughputs
from computepool.model.workload import Workload
from computepool.traces.columns import WorkloadColumns, generic_rate, resolve_throughputs
from computepool.traces.csvutil import csv_rows
from computepool.traces.errors import TraceError, parse_float, parse_int

COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")


def parse_timestamp(text: str, file: str, line: int, field: str = "timestamp") -> float:
    value = text.strip()
    try:
        if len(value) != 19 or value[10] != " ":
            raise ValueError(value)
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise TraceError(
            file, f"{text!r} is not a 'YYYY-MM-DD HH:MM:SS' time", line, field
        ) from None
    return ts.replace(tzinfo=UTC).timestamp()


def read_philly(
    path: str | Path, throughputs: Throughputs | None = None, reference: str = "V100"
) -> Workload:
    """Philly jobs as a ``Workload``; ids are the 0-based data-row numbers in file order."""
    t = resolve_throughputs(throughputs)
    file = str(path)
    cols = WorkloadColumns(name=file)
    rates: dict[int, float] = {}
    for k, (line, row) in enumerate(csv_rows(path, COLUMNS)):
        arrival = parse_timestamp(row["timestamp"], file, line)
        duration = parse_float(row["duration"], file, line, "duration", minimum=0)
        gpus = parse_int(row["num_gpus"], file, line, "num_gpus", minimum=1)
        parse_float(row["gpu_time"], file, line, "gpu_time", minimum=0)
        vc = row["cluster"].strip()
        if not vc:
            raise TraceError(file, "is empty", line, "cluster")
        if gpus not in rates:
            rates[gpus] = generic_rate(t, gpus, reference, file)
        cols.add(
            job_id=str(k),
            job_type=GENERIC,
            scale_factor=gpus,
            total_steps=duration * rates[gpus],
            arrival=arrival,
            tenant=vc,
        )
    return cols.build(relative_to_first=True)
