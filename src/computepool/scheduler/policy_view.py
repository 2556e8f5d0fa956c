"""What the policy sees and may touch in a round, as functions over the round's state.

The ``PolicyInput`` over active rows (``build_policy_input``), the rows a quota gate lets
through (``gate_input``), what the policy may not touch (``hold_back``: non-preemptible running
jobs and what services (``ServingHook``) reserve), and the order in which the mechanism fills
flavors (``flavor_order``). ``scheduler/round.py`` strings them together around the policy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from computepool.model.workload import Workload
from computepool.policies.base import PolicyInput, restrict_flavors, subset_input
from computepool.scheduler.interfaces import RoundGate
from computepool.scheduler.state import ActiveSet


class ServingHook(Protocol):
    """Long-running services that hold accelerators beside the jobs (``serving.controller``).

    ``reserve`` is called every round before the policy: it returns the accelerators per flavor
    the services hold from now on (``capacity``) and the rows to preempt for them (``evict``);
    the policy then allocates what is left. ``held`` is what they held since the last round.
    """

    def reserve(self, inp: PolicyInput) -> object: ...

    def held(self) -> np.ndarray: ...

    def active(self, now: float) -> bool: ...


def build_policy_input(
    now: float,
    active: ActiveSet,
    workload: Workload,
    class_scale_factor: np.ndarray,
    class_throughput: np.ndarray,
    feasible_masks: np.ndarray,
    capacity: np.ndarray,
    price: np.ndarray,
    extras: dict,
) -> PolicyInput:
    """The policy's view of the active rows (per-row columns, per-class rates and per-profile
    masks instead of an n x F matrix)."""
    a, w = active, workload
    jobs = a.job
    cls = w.job_class[jobs]
    return PolicyInput(
        now=now,
        job=jobs,
        scale_factor=class_scale_factor[cls],
        weight=w.weight[jobs],
        arrival=w.arrival[jobs],
        attained=a.attained,
        steps_done=a.steps_done,
        steps_total=w.total_steps[jobs],
        running=a.running,
        deadline=w.arrival[jobs] + w.deadline[jobs],
        tenant=w.tenant[jobs],
        job_class=cls,
        job_mask_index=w.data_profile[jobs],
        class_throughput=class_throughput,
        feasible_masks=feasible_masks,
        capacity=capacity,
        price=price,
        extras=extras,
    )


def flavor_order(speed_order: np.ndarray, aware: bool, rounds: int) -> np.ndarray:
    """Order in which the mechanism fills flavors: fastest first for heterogeneity-aware
    policies, else rotated by one flavor each round."""
    if aware:
        return speed_order
    return np.roll(speed_order, -(rounds % len(speed_order)))


def gate_input(
    gate: RoundGate, inp: PolicyInput
) -> tuple[PolicyInput, np.ndarray, np.ndarray | None]:
    """Rows the gate lets into this round: the input restricted to them, their row indices,
    and the (n, F) flavors each row may use when the gate answers per flavor (else None)."""
    rows = np.arange(len(inp.job))
    allowed = None
    ok = np.asarray(gate.eligible(inp), dtype=bool)
    if ok.ndim == 2:
        allowed, ok = ok, ok.any(axis=1)
    if not ok.all():
        rows = np.nonzero(ok)[0]
        inp = subset_input(inp, rows)
    if allowed is not None:
        inp = restrict_flavors(inp, allowed[rows])
    return inp, rows, allowed


def hold_back(
    inp: PolicyInput,
    rows: np.ndarray,
    preemptible: np.ndarray,
    serving: ServingHook | None,
) -> tuple[PolicyInput, np.ndarray, np.ndarray]:
    """Take out of the policy's hands what it may not touch this round.

    Non-preemptible ("on-demand") running jobs (``preemptible`` per job id) keep their
    accelerators: neither the policy nor a service takes them (a quota gate above still can).
    Services (``serving``) then reserve their accelerators, preempting preemptible rows if they
    must; those rows sit this round out. Returns the reduced input, its rows, and the pinned
    rows.
    """
    pin = (inp.running >= 0) & ~preemptible[inp.job]
    pinned = rows[pin]
    if pin.any():
        held = np.bincount(
            inp.running[pin], weights=inp.scale_factor[pin], minlength=len(inp.capacity)
        )
        keep = np.nonzero(~pin)[0]
        rows = rows[keep]
        inp = replace(
            subset_input(inp, keep), capacity=np.maximum(inp.capacity - held, 0).astype(int)
        )
    if serving is not None:
        res: Any = serving.reserve(inp)  # .capacity (F,), .evict (n,) over inp's rows
        inp = replace(inp, capacity=np.maximum(inp.capacity - res.capacity, 0))
        if res.evict.any():
            keep = np.nonzero(~res.evict)[0]
            rows = rows[keep]
            inp = subset_input(inp, keep)
    return inp, rows, pinned
