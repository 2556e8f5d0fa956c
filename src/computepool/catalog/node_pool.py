"""A ``Pool`` from a plain list of nodes (a Ray inventory, a live pool's snapshot), checked
against the catalog: every accelerator type and region must be known, node names unique."""

from __future__ import annotations

from collections.abc import Sequence

from computepool.catalog.catalog import Catalog
from computepool.catalog.regions import bandwidth_matrix, links_for, rtt_matrix
from computepool.model.pool import Node, Pool


def node_list_problems(nodes: Sequence[Node], catalog: Catalog, what: str = "node") -> list[str]:
    problems: list[str] = []
    for n in nodes:
        if n.accelerator not in catalog.accelerators:
            problems.append(
                f"{what} {n.name}: unknown accelerator type {n.accelerator!r}; known: "
                + ", ".join(sorted(catalog.accelerators))
            )
        if n.region not in catalog.regions:
            problems.append(
                f"{what} {n.name}: unknown region {n.region!r}; known: "
                + ", ".join(sorted(catalog.regions))
            )
    names = [n.name for n in nodes]
    problems += [
        f"{what} name {x!r} is used by several nodes"
        for x in sorted(set(names))
        if names.count(x) > 1
    ]
    return problems


def pool_of_nodes(
    name: str, nodes: Sequence[Node], catalog: Catalog | None = None, description: str = ""
) -> Pool:
    """The pool of ``nodes`` in a stable order (region, type, name); ValueError names every
    problem."""
    cat = catalog or Catalog.load()
    if not nodes:
        raise ValueError("a pool needs at least one node")
    problems = node_list_problems(nodes, cat)
    if problems:
        raise ValueError("unusable node list:\n  " + "\n  ".join(problems))
    ordered = sorted(nodes, key=lambda n: (n.region, n.accelerator, n.name))
    regions = {r: cat.regions[r] for r in sorted({n.region for n in ordered})}
    links = links_for(regions.values(), cat.network)
    return Pool(
        name=name,
        accelerators=dict(cat.accelerators),
        regions=regions,
        nodes=tuple(ordered),
        rtt_ms=rtt_matrix(links),
        bandwidth_gbps=bandwidth_matrix(links),
        description=description,
    )
