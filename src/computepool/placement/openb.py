"""Readers for the node and pod lists of Alibaba's GPU-sharing trace (openb, FGD ATC'23).

``NODES.csv``: ``sn,cpu_milli,memory_mib,gpu,model``. ``PODS.csv``: ``name,cpu_milli,
memory_mib,num_gpu,gpu_milli,gpu_spec,...`` (``gpu_spec``: accepted models joined by ``|``).
Errors name the file, line, field and reason. Pod lists are read by the trace readers
(``computepool.traces.read_openb_pods``); this module turns them into ``PodRequest``s.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from computepool.placement.request import PodRequest, request_problem
from computepool.placement.state import SlotState
from computepool.traces.errors import TraceError
from computepool.traces.openb import read_openb_pods

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")


class TraceFileError(ValueError):
    """A node list that cannot be read: ``FILE: line N: field 'F': reason`` (parts known)."""

    def __init__(
        self, file: str | Path, reason: str, line: int | None = None, field: str | None = None
    ) -> None:
        self.file, self.reason, self.line, self.field = str(file), reason, line, field
        where = "" if line is None else f"line {line}: "
        what = "" if field is None else f"field {field!r}: "
        super().__init__(f"{self.file}: {where}{what}{reason}")


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
        raise TraceFileError(path, f"cannot open: {exc.strerror}") from None
    with f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise TraceFileError(path, f"missing column(s) {', '.join(missing)}", 1)
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise TraceFileError(path, "no rows")
    return rows


def _int(path: Path, line: int, row: dict[str, str], field: str) -> int:
    text = (row.get(field) or "").strip()
    try:
        value = int(text)
    except ValueError:
        raise TraceFileError(path, f"{text!r} is not an integer", line, field) from None
    if value < 0:
        raise TraceFileError(path, f"{value} is negative", line, field)
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
            raise TraceFileError(p, "empty for a node with GPUs", line, "model")
        models.append(model)
    return SlotState.build(names, models, counts, cpus, mems)


def read_pods(path: str | Path) -> PodList:
    """Pods of an openb pod list (read by ``computepool.traces.read_openb_pods``)."""
    table = read_openb_pods(path)
    reqs, cache = [], {}
    for i in range(len(table)):
        num, milli = int(table.num_gpu[i]), int(table.gpu_milli[i])
        key = (
            int(table.cpu_milli[i]),
            int(table.memory_mib[i]),
            num,
            milli if num else 0,
            frozenset(table.allowed_models(i)),
        )
        req = cache.get(key)
        if req is None:
            problem = request_problem(*key[:4])
            if problem:
                raise TraceError(str(path), f"pod {str(table.name[i])!r} (row {i + 1}): {problem}")
            req = cache[key] = PodRequest(*key)
        reqs.append(req)
    return PodList(tuple(str(n) for n in table.name), tuple(reqs))


def load_nodes(spec: str | Path) -> SlotState:
    """A node list CSV, or else a shipped pool name (e.g. ``openb``)."""
    p = Path(spec)
    if p.exists() or p.suffix == ".csv":
        return read_nodes(p)
    from computepool.catalog.pools import load_pool

    return SlotState.from_pool(load_pool(str(spec)))
