"""Tenant: an automaker or team, with a fair-share weight, quotas per flavor and a budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FlavorQuota:
    """Kueue-style quota for one flavor (accelerators)."""

    nominal: float = 0.0
    #: How much more than ``nominal`` the tenant may borrow from its cohort (None: unlimited).
    borrowing_limit: float | None = None
    #: How much of ``nominal`` others in the cohort may borrow (None: all of it).
    lending_limit: float | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    weight: float = 1.0
    cohort: str = ""
    #: Quota per flavor name (``region/accelerator``); ``*`` matches any flavor.
    quotas: Mapping[str, FlavorQuota] = field(default_factory=dict)
    budget_accel_hours: float | None = None
    budget_usd: float | None = None


def parse_flavor_quota(text: str | float | int) -> FlavorQuota:
    """``NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]]`` (an empty limit means none), or a number
    (nominal only). Raises ValueError naming the expected form."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r}: expected NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]]")
    parts = [str(text)] if isinstance(text, int | float) else str(text).split(":")
    try:
        if not 1 <= len(parts) <= 3:
            raise ValueError
        nums = [float(p) if p.strip() != "" else None for p in parts]
        if nums[0] is None or any(v is not None and not (0 <= v < float("inf")) for v in nums):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{text!r}: expected NOMINAL[:BORROWING_LIMIT[:LENDING_LIMIT]] of numbers >= 0, "
            "e.g. 8, '8:4' or '8::2'"
        ) from None
    nominal, borrow, lend = (nums + [None, None])[:3]
    return FlavorQuota(float(nominal or 0.0), borrow, lend)
