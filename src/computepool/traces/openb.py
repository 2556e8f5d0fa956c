"""Read Alibaba's ``openb`` pod lists (cluster-trace-gpu-v2023, FGD ATC'23).

Columns ``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,
deletion_time,scheduled_time``. ``gpu_milli`` is the share of one GPU in thousandths (1000 = a
whole GPU; below 1000 = GPU sharing, only with ``num_gpu == 1``); ``gpu_spec`` lists the GPU
models a pod accepts, ``|``-separated (empty = any); times are seconds, possibly empty.

Only ``name,cpu_milli,num_gpu,gpu_milli`` are required: the public set has every layout of the
rest (``openb_pod_list_multigpu*.csv`` stop after ``gpu_milli``; the FGD simulator's
``openb_pod_list_nomem*.csv`` have no ``memory_mib``). A missing column means none: no memory
request, any GPU model, no QoS or phase, unknown times.

Two views:

* ``read_openb_pods`` -> ``PodTable``: every pod, its CPU/memory/GPU request and GPU-model
  constraint as NumPy columns, for placement/fragmentation experiments (``cpool pack``).
* ``read_openb`` -> ``Workload``: GPU pods (``num_gpu >= 1``) whose deletion time is known, as
  ``generic`` jobs of ``num_gpu`` accelerators running ``deletion - creation`` seconds on the
  reference accelerator; ``gpu_spec`` becomes the job class's accepted accelerators. A fractional
  pod counts as one whole accelerator here (the Workload has no fractional devices); use the
  PodTable for sharing. CPU-only pods are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from computepool.model.throughput import GENERIC, Throughputs
from computepool.model.workload import Workload
from computepool.traces.columns import WorkloadColumns, generic_rate, resolve_throughputs
from computepool.traces.csvutil import csv_rows
from computepool.traces.errors import TraceError, parse_float, parse_int

COLUMNS = (
    "name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec",
    "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time",
)  # fmt: skip
#: The columns every layout of the public pod lists has; the others are optional.
REQUIRED = ("name", "cpu_milli", "num_gpu", "gpu_milli")


@dataclass
class PodTable:
    """openb pods as columns (row i = pod i in file order).

    ``gpu_spec[i]`` indexes ``gpu_specs``, the distinct allowed-model tuples (``()`` = any GPU
    model). Times are seconds; NaN where the file leaves them empty.
    """

    name: np.ndarray  # str
    cpu_milli: np.ndarray  # int64, thousandths of a CPU core
    memory_mib: np.ndarray  # int64
    num_gpu: np.ndarray  # int32, whole GPUs requested (0 = CPU-only)
    gpu_milli: np.ndarray  # int32, thousandths of one GPU per GPU (1000 = whole)
    gpu_spec: np.ndarray  # int32 index into gpu_specs
    gpu_specs: list[tuple[str, ...]]
    qos: np.ndarray  # str: LS, BE, Burstable, Guaranteed
    pod_phase: np.ndarray  # str: Running, Succeeded, Failed, Pending
    creation_time: np.ndarray  # float64 s
    deletion_time: np.ndarray  # float64 s, NaN = unknown
    scheduled_time: np.ndarray  # float64 s, NaN = never scheduled
    source: str = ""

    def __len__(self) -> int:
        return len(self.name)

    def allowed_models(self, i: int) -> tuple[str, ...]:
        """GPU models pod ``i`` may run on; ``()`` means any."""
        return self.gpu_specs[int(self.gpu_spec[i])]

    @property
    def gpu_request(self) -> np.ndarray:
        """GPUs requested per pod as a float (``0.46`` for a 460-milli shared pod)."""
        return np.where(self.num_gpu == 1, self.gpu_milli / 1000.0, self.num_gpu.astype(np.float64))

    @property
    def duration(self) -> np.ndarray:
        """``deletion - creation`` seconds (NaN where the deletion time is unknown)."""
        return self.deletion_time - self.creation_time


def _opt_time(text: str, file: str, line: int, field: str) -> float:
    return float("nan") if not text.strip() else parse_float(text, file, line, field, minimum=0)


def _opt_int(text: str, file: str, line: int, field: str) -> int:
    return 0 if not text.strip() else parse_int(text, file, line, field, minimum=0)


def read_openb_pods(path: str | Path) -> PodTable:
    """Every pod of an ``openb_pod_list_*.csv`` file as a ``PodTable``."""
    file = str(path)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    spec_ix: dict[tuple[str, ...], int] = {(): 0}
    for line, cells in csv_rows(path, REQUIRED):
        row = {c: cells.get(c, "") for c in COLUMNS}
        name = row["name"].strip()
        if not name:
            raise TraceError(file, "is empty", line, "name")
        num_gpu = parse_int(row["num_gpu"], file, line, "num_gpu", minimum=0)
        gpu_milli = parse_int(row["gpu_milli"], file, line, "gpu_milli", minimum=0)
        if gpu_milli > 1000:
            raise TraceError(file, f"{gpu_milli} exceeds 1000 (one whole GPU)", line, "gpu_milli")
        if num_gpu > 1 and gpu_milli not in (0, 1000):
            raise TraceError(
                file,
                f"{gpu_milli} with num_gpu={num_gpu}: sharing needs num_gpu 1",
                line,
                "gpu_milli",
            )
        created = _opt_time(row["creation_time"], file, line, "creation_time")
        deleted = _opt_time(row["deletion_time"], file, line, "deletion_time")
        if deleted < created:
            raise TraceError(
                file, f"{deleted:g} is before creation_time {created:g}", line, "deletion_time"
            )
        spec = tuple(m.strip() for m in row["gpu_spec"].split("|") if m.strip())
        cols["name"].append(name)
        cols["cpu_milli"].append(parse_int(row["cpu_milli"], file, line, "cpu_milli", minimum=0))
        cols["memory_mib"].append(_opt_int(row["memory_mib"], file, line, "memory_mib"))
        cols["num_gpu"].append(num_gpu)
        cols["gpu_milli"].append(gpu_milli)
        cols["gpu_spec"].append(spec_ix.setdefault(spec, len(spec_ix)))
        cols["qos"].append(row["qos"].strip())
        cols["pod_phase"].append(row["pod_phase"].strip())
        cols["creation_time"].append(created)
        cols["deletion_time"].append(deleted)
        cols["scheduled_time"].append(
            _opt_time(row["scheduled_time"], file, line, "scheduled_time")
        )
    return PodTable(
        name=np.array(cols["name"], dtype=str),
        cpu_milli=np.array(cols["cpu_milli"], dtype=np.int64),
        memory_mib=np.array(cols["memory_mib"], dtype=np.int64),
        num_gpu=np.array(cols["num_gpu"], dtype=np.int32),
        gpu_milli=np.array(cols["gpu_milli"], dtype=np.int32),
        gpu_spec=np.array(cols["gpu_spec"], dtype=np.int32),
        gpu_specs=list(spec_ix),
        qos=np.array(cols["qos"], dtype=str),
        pod_phase=np.array(cols["pod_phase"], dtype=str),
        creation_time=np.array(cols["creation_time"], dtype=np.float64),
        deletion_time=np.array(cols["deletion_time"], dtype=np.float64),
        scheduled_time=np.array(cols["scheduled_time"], dtype=np.float64),
        source=file,
    )


def pods_to_workload(
    pods: PodTable, throughputs: Throughputs | None = None, reference: str = "V100"
) -> Workload:
    """The simulator's view of a pod table (see the module docstring for what is kept)."""
    t = resolve_throughputs(throughputs)
    cols = WorkloadColumns(name=pods.source)
    rates: dict[int, float] = {}
    if len(pods) and np.isnan(pods.creation_time).all():
        raise TraceError(
            pods.source,
            "has no creation times: a pod list for packing (cpool pack), not a workload",
            1,
            "creation_time",
        )
    known = ~np.isnan(pods.deletion_time) & ~np.isnan(pods.creation_time)
    keep = np.flatnonzero((pods.num_gpu >= 1) & known)
    for i in keep:
        sf = int(pods.num_gpu[i])
        if sf not in rates:
            rates[sf] = generic_rate(t, sf, reference, pods.source)
        cols.add(
            job_id=str(pods.name[i]),
            job_type=GENERIC,
            scale_factor=sf,
            total_steps=float(pods.deletion_time[i] - pods.creation_time[i]) * rates[sf],
            arrival=float(pods.creation_time[i]),
            accelerators=pods.allowed_models(int(i)),
        )
    return cols.build(relative_to_first=True)


def read_openb(
    path: str | Path, throughputs: Throughputs | None = None, reference: str = "V100"
) -> Workload:
    return pods_to_workload(read_openb_pods(path), throughputs, reference)
