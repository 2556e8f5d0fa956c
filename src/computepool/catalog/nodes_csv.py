"""Read a node-list CSV (the openb layout: ``sn,cpu_milli,memory_mib,gpu,model``) into ``Node``s.

Optional columns ``region`` and ``island`` override the defaults given by the pool file. Every bad
cell is reported as ``file:line:column (column name): reason``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass

from computepool.model.pool import Node

REQUIRED = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
OPTIONAL = ("region", "island")
MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class CsvDefaults:
    region: str | None
    island: str
    accelerator_map: Mapping[str, str]
    known_accelerators: frozenset[str]
    known_regions: frozenset[str]


def _int_cell(text: str, where: str, name: str, minimum: int) -> tuple[int | None, str | None]:
    try:
        value = int(text.strip())
    except ValueError:
        return None, f"{where} ({name}): {text!r} is not an integer"
    if value < minimum:
        return None, f"{where} ({name}): must be >= {minimum} (got {value})"
    return value, None


def read_nodes_csv(text: str, file: str, d: CsvDefaults) -> tuple[list[Node], list[str]]:
    """Parse the CSV text. Returns (nodes, problems); problems name ``file:line:column``."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return [], [f"{file}:1: empty file, expected a header {','.join(REQUIRED)}"]
    cols = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        return [], [
            f"{file}:1: header lacks column(s) {', '.join(missing)} (has {','.join(header)})"
        ]
    nodes: list[Node] = []
    problems: list[str] = []
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            problems.append(f"{file}:{lineno}: has {len(row)} fields, header has {len(header)}")
            continue
        node, errs = _row_to_node(row, cols, f"{file}:{lineno}", d)
        problems += errs
        if node is not None:
            nodes.append(node)
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"{file}: stopped after {MAX_PROBLEMS} problems")
            break
    return nodes, problems


def _row_to_node(
    row: list[str], cols: Mapping[str, int], where: str, d: CsvDefaults
) -> tuple[Node | None, list[str]]:
    def at(name: str) -> str:
        return f"{where}:{cols[name] + 1}"

    errs: list[str] = []
    sn = row[cols["sn"]].strip()
    if not sn:
        errs.append(f"{at('sn')} (sn): empty node name")
    cpu, e1 = _int_cell(row[cols["cpu_milli"]], at("cpu_milli"), "cpu_milli", 0)
    mem, e2 = _int_cell(row[cols["memory_mib"]], at("memory_mib"), "memory_mib", 0)
    gpu, e3 = _int_cell(row[cols["gpu"]], at("gpu"), "gpu", 1)
    errs += [e for e in (e1, e2, e3) if e]
    model = row[cols["model"]].strip()
    accel = d.accelerator_map.get(model, model)
    if accel not in d.known_accelerators:
        known = ", ".join(sorted(d.known_accelerators))
        errs.append(f"{at('model')} (model): unknown accelerator type {model!r}; known: {known}")
    region = row[cols["region"]].strip() if "region" in cols else d.region
    if region is None:
        errs.append(f"{where}: no region column and the pool gives no default region")
    elif region not in d.known_regions:
        known = ", ".join(sorted(d.known_regions))
        where_r = at("region") if "region" in cols else where
        errs.append(f"{where_r} (region): unknown region {region!r}; known: {known}")
    island = row[cols["island"]].strip() if "island" in cols else d.island
    if errs:
        return None, errs
    assert cpu is not None and mem is not None and gpu is not None and region is not None
    return Node(sn, region, accel, gpu, island, cpu, mem), []
