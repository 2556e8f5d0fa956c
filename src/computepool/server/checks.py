"""Admission checks the server can be started with (``cpool serve --check NAME``).

Each is a ``ProfileCheck`` (see ``scheduler/admission_masks.py``): it says which flavors a
job's data may legally use. ``residency`` is the data-residency rulebook
(``admission/residency``): the shipped rules on a pool that spans jurisdictions, nothing on a
pool in one. ``off`` means no check. A new check registers here; this file is the only wiring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from computepool.model.pool import Pool
from computepool.scheduler.loop import ProfileCheck

OnRecord = Callable[[dict[str, Any]], None] | None
DEFAULT_CHECKS = ("residency",)


def _residency(pool: Pool, on_record: OnRecord) -> ProfileCheck | None:
    from computepool.admission.residency_config import ResidencyOptions, make_residency_check

    return make_residency_check(
        pool, ResidencyOptions(live=True), on_record=on_record, now=time.time()
    )


def _registry() -> dict[str, Callable[[Pool, OnRecord], ProfileCheck | None]]:
    return {"residency": _residency}


def check_names() -> list[str]:
    return sorted(_registry())


def resolve_checks(
    names: Sequence[str], pool: Pool, on_record: OnRecord = None
) -> list[ProfileCheck]:
    """The checks named (``off`` alone: none); a check with nothing to do on ``pool`` is left out."""
    if list(names) == ["off"]:
        return []
    reg = _registry()
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise ValueError(
            f"unknown admission check {unknown[0]!r}; known: {', '.join(sorted(reg))}, off"
        )
    built = [reg[n](pool, on_record) for n in names]
    return [c for c in built if c is not None]
