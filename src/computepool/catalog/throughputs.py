"""Read throughput tables (Gavel's JSON layout) into a ``Throughputs`` object."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from computepool.model.accelerator import AcceleratorType
from computepool.model.throughput import ClassKey, Throughputs

#: Gavel's worker-type names -> our accelerator names.
GAVEL_WORKER_TYPES = {"v100": "V100", "p100": "P100", "k80": "K80"}
SHIPPED = {"gavel": "gavel_simulation.json"}


class ThroughputFileError(ValueError):
    pass


def _parse_key(text: str, path: str) -> ClassKey:
    try:
        jt, sf = ast.literal_eval(text)
        return str(jt), int(sf)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ThroughputFileError(
            f"{path}: key {text!r} is not of the form \"('<job type>', <scale factor>)\""
        ) from exc


def parse_gavel_throughputs(
    data: Mapping[str, object],
    accelerators: Mapping[str, AcceleratorType],
    path: str = "<throughputs>",
    with_pairs: bool = True,
) -> Throughputs:
    measured: dict[ClassKey, dict[str, float]] = {}
    unconsolidated: dict[ClassKey, dict[str, float]] = {}
    pairs: dict[tuple[ClassKey, ClassKey], dict[str, tuple[float, float]]] = {}
    if not isinstance(data, Mapping):
        raise ThroughputFileError(f"{path}: top level must be an object of worker types")
    for worker_type, rows in data.items():
        base = worker_type.removesuffix("_unconsolidated")
        accel = GAVEL_WORKER_TYPES.get(base, base)
        target = unconsolidated if worker_type.endswith("_unconsolidated") else measured
        if not isinstance(rows, Mapping):
            raise ThroughputFileError(f"{path}: {worker_type}: expected an object of job keys")
        for key_text, entry in rows.items():
            key = _parse_key(key_text, f"{path}: {worker_type}")
            if not isinstance(entry, Mapping) or "null" not in entry:
                raise ThroughputFileError(
                    f'{path}: {worker_type}: {key_text}: missing the isolated rate under "null"'
                )
            target.setdefault(key, {})[accel] = float(entry["null"])
            if with_pairs and target is measured:
                for other_text, pair in entry.items():
                    if other_text == "null":
                        continue
                    other = _parse_key(other_text, f"{path}: {worker_type}: {key_text}")
                    pairs.setdefault((key, other), {})[accel] = (float(pair[0]), float(pair[1]))
    return Throughputs(accelerators, measured, unconsolidated, pairs, source=path)


def load_throughputs(
    name_or_path: str | Path = "gavel",
    accelerators: Mapping[str, AcceleratorType] | None = None,
    with_pairs: bool = True,
) -> Throughputs:
    """Load a shipped table by name (``gavel``) or a JSON file in Gavel's layout."""
    if accelerators is None:
        from computepool.catalog.accelerators import load_accelerators

        accelerators = load_accelerators()
    if str(name_or_path) in SHIPPED:
        ref = (
            resources.files("computepool.catalog")
            / "data"
            / "throughputs"
            / SHIPPED[str(name_or_path)]
        )
        text, path = ref.read_text(), f"throughputs/{SHIPPED[str(name_or_path)]}"
    else:
        p = Path(name_or_path)
        if not p.exists():
            raise ThroughputFileError(
                f"{p}: no such throughput file (shipped: {', '.join(SHIPPED)})"
            )
        text, path = p.read_text(), str(p)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ThroughputFileError(f"{path}: line {exc.lineno}: not valid JSON: {exc.msg}") from exc
    return parse_gavel_throughputs(data, accelerators, path, with_pairs)
