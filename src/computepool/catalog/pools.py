"""Read pool files (YAML, optionally with a node-list CSV) into ``Pool`` objects.

The schema is documented in docs/pools.md. Every problem found is reported at once in a
``PoolFileError`` that names the file, the field (``node_groups[2].per_node``) and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from computepool.catalog.accelerators import build_types, resolve_likes
from computepool.catalog.catalog import Catalog
from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.files import data_dir, label, read_text, read_yaml_mapping, shipped
from computepool.catalog.nodes_csv import CsvDefaults, read_nodes_csv
from computepool.catalog.regions import bandwidth_matrix, links_for, region_from_row, rtt_matrix
from computepool.catalog.schema import NodeGroup, PoolFile, RegionRow
from computepool.model.accelerator import AcceleratorType
from computepool.model.pool import Node, Pool
from computepool.model.region import Region

__all__ = ["PoolFileError", "list_pools", "load_pool", "validate_pool_file"]


class PoolFileError(CatalogFileError):
    """A pool file is unreadable or invalid; ``str()`` lists every problem, one per line."""

    kind = "pool file"


def list_pools() -> list[str]:
    """Names of the shipped example pools (usable with ``load_pool``)."""
    return sorted(
        e.name.removesuffix(".yaml")
        for e in (data_dir() / "pools").iterdir()
        if e.name.endswith(".yaml")
    )


def locate(name_or_path: str | Path) -> Traversable | Path:
    """A path to a YAML file, or the shipped pool of that name."""
    p = Path(name_or_path)
    if p.exists() or p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        return p
    ref = shipped("pools", f"{name_or_path}.yaml")
    if not ref.is_file():
        raise PoolFileError(
            str(name_or_path),
            [
                Problem(
                    "",
                    f"no shipped pool of that name (shipped: {', '.join(list_pools())}) "
                    "and no such file",
                )
            ],
        )
    return ref


def load_pool(name_or_path: str | Path, catalog: Catalog | None = None) -> Pool:
    """Load a shipped pool by name (``gavel-36x3``) or a pool YAML file by path."""
    ref = locate(name_or_path)
    doc = read_yaml_mapping(ref, PoolFileError)
    base_dir = ref.parent if isinstance(ref, Path) else shipped("pools")
    return parse_pool(doc, label(ref), base_dir, catalog or Catalog.load())


def validate_pool_file(path: str | Path) -> Pool:
    """Load and fully validate the pool file at ``path`` (for ``cpool validate``)."""
    p = Path(path)
    if not p.is_file():
        raise PoolFileError(str(p), [Problem("", "file not found")])
    return load_pool(p)


@dataclass
class _Build:
    """Mutable scratch state of one parse (local to ``parse_pool``)."""

    problems: list[Problem] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)

    def add_nodes(self, nodes: Iterable[Node], where: str) -> None:
        for n in nodes:
            if n.name in self.origin:
                self.problems.append(
                    Problem(
                        where, f"duplicate node name {n.name!r} (also from {self.origin[n.name]})"
                    )
                )
                continue
            self.origin[n.name] = where
            self.nodes.append(n)


def parse_pool(
    doc: Mapping[str, Any], file: str, base_dir: Traversable | Path, catalog: Catalog
) -> Pool:
    """Validate a parsed pool document against ``catalog`` and build the ``Pool``."""
    fx = catalog.accelerator_catalog.fx
    try:
        spec = PoolFile.model_validate(doc, context={"fx": fx})
    except ValidationError as exc:
        raise PoolFileError(file, problems_from_validation(exc)) from exc
    b = _Build()
    accels = _accelerators(spec.accelerators, catalog, b.problems)
    all_regions, listed = _regions(spec.regions, catalog, fx, b.problems)
    for i, g in enumerate(spec.node_groups):
        b.add_nodes(
            _expand_group(g, f"node_groups[{i}]", accels, all_regions, listed, b.problems),
            f"node_groups[{i}]",
        )
    if spec.nodes_csv is not None:
        b.add_nodes(
            _csv_nodes(spec, base_dir, accels, all_regions, listed, b.problems), "nodes_csv"
        )
    if b.problems:
        raise PoolFileError(file, b.problems)
    used = listed if listed is not None else sorted({n.region for n in b.nodes})
    regions = {r: all_regions[r] for r in used}
    links = links_for(regions.values(), catalog.network)
    return Pool(
        name=spec.name,
        accelerators=accels,
        regions=regions,
        nodes=tuple(b.nodes),
        rtt_ms=rtt_matrix(links),
        bandwidth_gbps=bandwidth_matrix(links),
        description=spec.description,
    )


def _accelerators(
    rows: list[dict[str, Any]], catalog: Catalog, problems: list[Problem]
) -> dict[str, AcceleratorType]:
    if not rows:
        return dict(catalog.accelerators)
    ac = catalog.accelerator_catalog
    raw, where, more = resolve_likes(
        ((f"accelerators[{i}]", r) for i, r in enumerate(rows)), ac.raw
    )
    problems += more
    types, more = build_types(raw, where, ac.reference_tflops, ac.stack_efficiency, ac.fx)
    problems += more
    return {**ac.types, **types}


def _regions(
    entries: list[Any] | None, catalog: Catalog, fx: Mapping[str, float], problems: list[Problem]
) -> tuple[dict[str, Region], list[str] | None]:
    """All known regions (catalog + inline rows) and the names the pool lists (None: not given)."""
    known = dict(catalog.regions)
    if entries is None:
        return known, None
    inline = {e.get("name"): i for i, e in enumerate(entries) if isinstance(e, dict)}
    listed: list[str] = []
    for i, entry in enumerate(entries):
        path = f"regions[{i}]"
        if isinstance(entry, dict):
            try:
                row = RegionRow.model_validate(entry, context={"fx": fx})
            except ValidationError as exc:
                problems.extend(problems_from_validation(exc, path))
                continue
            known[row.name] = region_from_row(row)
            name = row.name
        elif isinstance(entry, str):
            name = entry
            if name not in known and name not in inline:
                problems.append(
                    Problem(path, f"unknown region {name!r}; known: {', '.join(sorted(known))}")
                )
                continue
        else:
            problems.append(
                Problem(path, f"must be a region name or a region mapping, got {entry!r}")
            )
            continue
        if name in listed:
            problems.append(Problem(path, f"region {name!r} is listed twice"))
        listed.append(name)
    return known, listed


def _check_accel(
    path: str, accel: str, accels: Mapping[str, AcceleratorType], problems: list[Problem]
) -> bool:
    if accel in accels:
        return True
    known = ", ".join(sorted(accels))
    problems.append(Problem(path, f"unknown accelerator type {accel!r}; known: {known}"))
    return False


def _check_region(
    path: str,
    region: str,
    regions: Mapping[str, Region],
    listed: list[str] | None,
    problems: list[Problem],
) -> bool:
    if region not in regions:
        known = ", ".join(sorted(regions))
        problems.append(Problem(path, f"unknown region {region!r}; known: {known}"))
        return False
    if listed is not None and region not in listed:
        problems.append(
            Problem(path, f"region {region!r} is not in this pool's regions ({', '.join(listed)})")
        )
        return False
    return True


def island_names(g: NodeGroup, path: str, problems: list[Problem]) -> list[str]:
    """The island of each node of the group (see docs/pools.md)."""
    if isinstance(g.island, str) and "{" not in g.island:
        return [g.island] * g.nodes
    if isinstance(g.island, str):
        per = g.islands_of or 1
        return [g.island.format(i=k // per) for k in range(g.nodes)]
    per = g.islands_of or max(1, math.ceil(g.nodes / len(g.island)))
    if per * len(g.island) < g.nodes:
        problems.append(
            Problem(
                f"{path}.island",
                f"{len(g.island)} islands of {per} nodes hold "
                f"{per * len(g.island)} nodes, but the group has {g.nodes}",
            )
        )
        return []
    return [g.island[k // per] for k in range(g.nodes)]


def _expand_group(
    g: NodeGroup,
    path: str,
    accels: Mapping[str, AcceleratorType],
    regions: Mapping[str, Region],
    listed: list[str] | None,
    problems: list[Problem],
) -> list[Node]:
    ok = _check_accel(f"{path}.accelerator", g.accelerator, accels, problems)
    if not _check_region(f"{path}.region", g.region, regions, listed, problems) or not ok:
        return []
    islands = island_names(g, path, problems)
    if len(islands) != g.nodes:
        return []
    return [
        Node(
            f"{g.prefix}-{k}",
            g.region,
            g.accelerator,
            g.per_node,
            islands[k],
            g.cpu_milli,
            g.memory_mib,
        )
        for k in range(g.nodes)
    ]


def _csv_nodes(
    spec: PoolFile,
    base_dir: Traversable | Path,
    accels: Mapping[str, AcceleratorType],
    regions: Mapping[str, Region],
    listed: list[str] | None,
    problems: list[Problem],
) -> list[Node]:
    csv_spec = spec.nodes_csv
    assert csv_spec is not None
    default_region = csv_spec.region or (listed[0] if listed and len(listed) == 1 else None)
    if csv_spec.region is not None and not _check_region(
        "nodes_csv.region", csv_spec.region, regions, listed, problems
    ):
        return []
    ref = base_dir / csv_spec.path
    try:
        text = read_text(ref)
    except CatalogFileError:
        problems.append(Problem("nodes_csv.path", f"CSV file not found: {label(ref)}"))
        return []
    allowed = frozenset(listed) if listed is not None else frozenset(regions)
    defaults = CsvDefaults(
        default_region, csv_spec.island, csv_spec.accelerator_map, frozenset(accels), allowed
    )
    nodes, errs = read_nodes_csv(text, label(ref), defaults)
    problems.extend(Problem("nodes_csv", e) for e in errs)
    return nodes
