"""Readers for the node and pod lists of Alibaba's GPU-sharing trace (openb, FGD ATC'23).

``NODES.csv``: ``sn,cpu_milli,memory_mib,gpu,model``. ``PODS.csv``: ``name,cpu_milli,
memory_mib,num_gpu,gpu_milli,gpu_spec,...`` (``gpu_spec``: accepted models joined by ``|``).
Errors name the file, line, field and reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from computepool.placement.request import PodRequest, request_problem
from computepool.placement.state import SlotState

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec")


class TraceFileError(ValueError):
    pass


@dataclass(frozen=True)
class PodList:
    names: tuple[str, ...]
    requests: tuple[PodRequest, ...]

    def __len__(self) -> int:
        return len(self.names)


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        f = path.open(newline="")
    except OSError as exc:
        raise TraceFileError(f"{path}: cannot open: {exc.strerror}") from None
    with f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceFileError(f"{path}: line 1: missing column(s) {', '.join(missing)}")
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise TraceFileError(f"{path}: no rows")
    return rows


def _int(path: Path, line: int, row: dict[str, str], field: str) -> int:
    text = (row.get(field) or "").strip()
    try:
        value = int(text)
    except ValueError:
        raise TraceFileError(
            f"{path}: line {line}: field {field!r}: {text!r} is not an integer"
        ) from None
    if value < 0:
        raise TraceFileError(f"{path}: line {line}: field {field!r}: {value} is negative")
    return value


def read_nodes(path: str | Path) -> SlotState:
    """A fresh ``SlotState`` from a node list (one island per node: the trace has none)."""
    p = Path(path)
    names, models, counts, cpus, mems = [], [], [], [], []
    for line, row in _rows(p, NODE_COLUMNS):
        names.append(row["sn"])
        cpus.append(_int(p, line, row, "cpu_milli"))
        mems.append(_int(p, line, row, "memory_mib"))
        counts.append(_int(p, line, row, "gpu"))
        model = (row.get("model") or "").strip()
        if counts[-1] > 0 and not model:
            raise TraceFileError(f"{p}: line {line}: field 'model': empty for a node with GPUs")
        models.append(model)
    return SlotState.build(names, models, counts, cpus, mems)


def read_pods(path: str | Path) -> PodList:
    p = Path(path)
    names, reqs = [], []
    cache: dict[tuple, PodRequest] = {}
    for line, row in _rows(p, POD_COLUMNS):
        vals = [_int(p, line, row, f) for f in ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli")]
        cpu, mem, num, milli = vals
        problem = request_problem(cpu, mem, num, milli)
        if problem:
            field = "gpu_milli" if "gpu_milli" in problem else "num_gpu"
            raise TraceFileError(f"{p}: line {line}: field {field!r}: {problem}")
        spec = frozenset(s for s in (row.get("gpu_spec") or "").split("|") if s.strip())
        key = (cpu, mem, num, milli, spec)
        req = cache.get(key)
        if req is None:
            req = cache[key] = PodRequest(cpu, mem, num, milli, spec)
        names.append(row["name"])
        reqs.append(req)
    return PodList(tuple(names), tuple(reqs))
