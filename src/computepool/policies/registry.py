"""Policy registry: name -> factory. Variants by composition, never by name matching."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from computepool.policies.base import Policy
from computepool.policies.cost import CostPolicy
from computepool.policies.cost_region import CostRegion
from computepool.policies.fifo import Fifo, FifoAgnostic, FifoSticky
from computepool.policies.ftf import FinishTimeFairness, FinishTimeFairnessAgnostic
from computepool.policies.isolated import Isolated
from computepool.policies.makespan import MinMakespan
from computepool.policies.max_min import (
    MaxMinFairness,
    MaxMinFairnessAgnostic,
    MaxMinFairnessCentre,
    MaxMinFairnessLex,
)
from computepool.policies.packed import MaxMinFairnessPacked
from computepool.policies.srpt import ShortestRemainingFirst
from computepool.policies.tiresias import Tiresias


def _registry() -> dict[str, Callable[..., Policy]]:
    return {
        "cost": CostPolicy,
        "fifo": Fifo,
        "fifo-agnostic": FifoAgnostic,
        "fifo-sticky": FifoSticky,
        "ftf": FinishTimeFairness,
        "ftf-agnostic": FinishTimeFairnessAgnostic,
        "isolated": Isolated,
        "las": MaxMinFairness,
        "las-agnostic": MaxMinFairnessAgnostic,
        "las-centre": MaxMinFairnessCentre,
        "las-lex": MaxMinFairnessLex,
        "las-packed": MaxMinFairnessPacked,
        "makespan": MinMakespan,
        "srpt": ShortestRemainingFirst,
        "tiresias": Tiresias,
        "cost-region": CostRegion,
    }


def policy_names() -> list[str]:
    return sorted(_registry())


def get_policy(name: str, **params: Any) -> Policy:
    reg = _registry()
    if name not in reg:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(sorted(reg))}")
    return reg[name](**params)
