"""Policy registry: name -> factory. Variants by composition, never by name matching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from computepool.policies.base import Policy
from computepool.policies.cost_region import CostRegion
from computepool.policies.fifo import Fifo, FifoAgnostic
from computepool.policies.tiresias import Tiresias


def _registry() -> dict[str, Callable[..., Policy]]:
    return {
        "fifo": Fifo,
        "fifo-agnostic": FifoAgnostic,
        "tiresias": Tiresias,
        # Until the heterogeneity-aware LP lands, ``las`` is Tiresias-style LAS.
        "las": Tiresias,
        "cost-region": CostRegion,
    }


def policy_names() -> list[str]:
    return sorted(_registry())


def get_policy(name: str, **params: Any) -> Policy:
    reg = _registry()
    if name not in reg:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(sorted(reg))}")
    return reg[name](**params)
