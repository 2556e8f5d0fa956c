"""Read Tiresias' small job traces (``60_job.csv``; SymbioticLab/Tiresias, Apache-2.0).

Columns ``job_id,num_gpu,submit_time,iterations,model_name,duration,interval`` (seconds). The
models (vgg19, inception4, ...) are not in Gavel's table, so each job is ``generic``: ``num_gpu``
accelerators running ``duration`` seconds on the reference accelerator.
"""

from __future__ import annotations

from pathlib import Path

from computepool.model.throughput import GENERIC, Throughputs
from computepool.model.workload import Workload
from computepool.traces.columns import WorkloadColumns, generic_rate, resolve_throughputs
from computepool.traces.csvutil import csv_rows
from computepool.traces.errors import TraceError, parse_float, parse_int

COLUMNS = ("job_id", "num_gpu", "submit_time", "duration")


def read_tiresias(
    path: str | Path, throughputs: Throughputs | None = None, reference: str = "V100"
) -> Workload:
    t = resolve_throughputs(throughputs)
    file = str(path)
    cols = WorkloadColumns(name=file)
    rates: dict[int, float] = {}
    seen: set[str] = set()
    for line, row in csv_rows(path, COLUMNS):
        job_id = row["job_id"].strip()
        if not job_id or job_id in seen:
            raise TraceError(file, f"{job_id!r} is empty or repeated", line, "job_id")
        seen.add(job_id)
        gpus = parse_int(row["num_gpu"], file, line, "num_gpu", minimum=1)
        submit = parse_float(row["submit_time"], file, line, "submit_time", minimum=0)
        duration = parse_float(row["duration"], file, line, "duration", minimum=0)
        if gpus not in rates:
            rates[gpus] = generic_rate(t, gpus, reference, file)
        cols.add(
            job_id=job_id,
            job_type=GENERIC,
            scale_factor=gpus,
            total_steps=duration * rates[gpus],
            arrival=submit,
        )
    return cols.build()
