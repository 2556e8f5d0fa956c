"""Read pool files (YAML) into ``Pool`` objects. Bootstrap version."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from computepool.catalog.accelerators import load_accelerators
from computepool.model.pool import Node, Pool
from computepool.model.region import Region


def load_pool(name_or_path: str | Path) -> Pool:
    p = Path(name_or_path)
    if p.exists():
        text = p.read_text()
    else:
        text = (
            resources.files("computepool.catalog") / "data" / "pools" / f"{name_or_path}.yaml"
        ).read_text()
    doc = yaml.safe_load(text)
    nodes = []
    for g in doc["node_groups"]:
        for i in range(g["nodes"]):
            nodes.append(
                Node(
                    f"{g['prefix']}-{i}",
                    g["region"],
                    g["accelerator"],
                    g["per_node"],
                    g.get("island", ""),
                )
            )
    regions = {r: Region(r, "US", 0.1, 1.2, 400.0) for r in doc["regions"]}
    return Pool(
        doc["name"],
        load_accelerators(),
        regions,
        tuple(nodes),
        description=doc.get("description", ""),
    )
