"""Admission checks the server can be started with (``cpool serve --check NAME``).

Each is a ``ProfileCheck`` (see ``scheduler/loop.py``): it says which flavors a job's data
may legally use. Data residency registers here when it lands; this file is the only wiring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from computepool.scheduler.loop import ProfileCheck


def _registry() -> dict[str, Callable[[], ProfileCheck]]:
    return {}


def check_names() -> list[str]:
    return sorted(_registry())


def resolve_checks(names: Sequence[str]) -> list[ProfileCheck]:
    reg = _registry()
    unknown = [n for n in names if n not in reg]
    if unknown:
        known = ", ".join(sorted(reg)) or "none yet"
        raise ValueError(f"unknown admission check {unknown[0]!r}; known: {known}")
    return [reg[n]() for n in names]
