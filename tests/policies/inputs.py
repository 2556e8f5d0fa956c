"""Small PolicyInputs built from a rate matrix (each row its own class)."""

from __future__ import annotations

import numpy as np

from computepool.policies.base import PolicyInput


def policy_input(
    rates,
    capacity,
    *,
    sf=None,
    weight=None,
    tenant=None,
    arrival=None,
    now: float = 0.0,
    steps_left=None,
    mask=None,
    deadline=None,
    price=None,
    extras=None,
    classes=None,
) -> PolicyInput:
    rates = np.asarray(rates, dtype=float)
    n, F = rates.shape
    classes = np.arange(n) if classes is None else np.asarray(classes)
    return PolicyInput(
        now=now,
        job=np.arange(n),
        scale_factor=np.ones(n, dtype=np.int64) if sf is None else np.asarray(sf, dtype=np.int64),
        weight=np.ones(n) if weight is None else np.asarray(weight, dtype=float),
        arrival=np.zeros(n) if arrival is None else np.asarray(arrival, dtype=float),
        attained=np.zeros(n),
        steps_done=np.zeros(n),
        steps_total=np.full(n, 1e6) if steps_left is None else np.asarray(steps_left, float),
        running=np.full(n, -1, dtype=np.int64),
        deadline=np.full(n, np.nan) if deadline is None else np.asarray(deadline, float),
        tenant=np.zeros(n, dtype=np.int64) if tenant is None else np.asarray(tenant),
        job_class=classes,
        job_mask_index=np.arange(n),
        class_throughput=rates[np.unique(classes, return_index=True)[1]]
        if classes is not None and len(np.unique(classes)) < n
        else rates,
        feasible_masks=np.ones((n, F), dtype=bool) if mask is None else np.asarray(mask, bool),
        capacity=np.asarray(capacity, dtype=np.int64),
        price=np.ones(F) if price is None else np.asarray(price, dtype=float),
        extras={} if extras is None else extras,
    )


def shares(alloc, n: int, F: int) -> np.ndarray:
    return alloc.dense(n, F)
