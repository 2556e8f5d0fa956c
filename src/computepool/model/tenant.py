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
