"""Read ``data/accelerators.yaml`` into ``AcceleratorType`` objects."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from computepool.model.accelerator import AcceleratorType


def load_accelerators(path: str | Path | None = None) -> dict[str, AcceleratorType]:
    if path is None:
        text = (resources.files("computepool.catalog") / "data" / "accelerators.yaml").read_text()
    else:
        text = Path(path).read_text()
    rows = yaml.safe_load(text)["accelerators"]
    return {r["name"]: AcceleratorType(**r) for r in rows}
