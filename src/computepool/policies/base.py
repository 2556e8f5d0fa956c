"""The one policy signature: ``PolicyInput -> Allocation``. No clock, no I/O, no hidden state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, ClassVar, Protocol

import numpy as np

from computepool.model.allocation import Allocation


@dataclass(frozen=True, eq=False)
class PolicyInput:
    """An immutable view of the active (admitted, unfinished) jobs and the free pool.

    Arrays over jobs have one entry per row (``n`` rows); arrays over flavors one per flavor
    (``F``). ``throughput`` is steps/s of the whole job on each flavor with every infeasible
    flavor (stack, accelerator type, gang larger than the flavor, residency) already at 0.
    """

    now: float
    job: np.ndarray  # (n,) workload index of each row
    scale_factor: np.ndarray  # (n,) accelerators held while running
    weight: np.ndarray  # (n,) job priority weight x tenant weight
    arrival: np.ndarray  # (n,) seconds
    attained: np.ndarray  # (n,) accelerator-seconds received so far
    steps_done: np.ndarray  # (n,)
    steps_total: np.ndarray  # (n,)
    running: np.ndarray  # (n,) flavor index the row runs on now, -1 if not running
    deadline: np.ndarray  # (n,) absolute seconds, nan if none
    tenant: np.ndarray  # (n,) tenant index
    job_class: np.ndarray  # (n,) class index into class_throughput
    job_mask_index: np.ndarray  # (n,) row into feasible_masks
    class_throughput: np.ndarray  # (C, F) steps/s per class and flavor (0 = infeasible)
    feasible_masks: np.ndarray  # (M, F) bool: flavors a job may legally use
    capacity: np.ndarray  # (F,) accelerators per flavor available to the policy
    price: np.ndarray  # (F,) USD per accelerator-hour
    #: Extra inputs some policies use (e.g. ``pair_throughputs`` for space sharing,
    #: ``carbon``/``energy_price`` per flavor, ``tenant_weight``); never required.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.job)

    @property
    def num_flavors(self) -> int:
        return len(self.capacity)

    @cached_property
    def feasible(self) -> np.ndarray:
        """(n, F) bool: the flavors each row may run on."""
        return self.feasible_masks[self.job_mask_index] & (
            self.class_throughput[self.job_class] > 0
        )

    @cached_property
    def throughput(self) -> np.ndarray:
        """(n, F) steps/s of each row on each flavor, 0 where infeasible."""
        return np.where(self.feasible, self.class_throughput[self.job_class], 0.0)

    @property
    def steps_left(self) -> np.ndarray:
        return np.maximum(self.steps_total - self.steps_done, 0.0)


class Policy(Protocol):
    #: Registry name.
    name: ClassVar[str]
    #: True when the allocation depends only on the set of jobs (not on time passing), so the
    #: scheduler may skip rounds in which no job arrived, finished or failed.
    event_driven: ClassVar[bool]

    def allocate(self, inp: PolicyInput) -> Allocation: ...


class TimedPolicy(Policy, Protocol):
    """An event-driven policy whose decision also changes at a time it can predict.

    ``next_change(inp, running)`` gives the absolute time at which the allocation would change
    if no job arrived or finished (e.g. Tiresias: when a running job crosses a queue threshold);
    ``running`` is the flavor per row after this round's assignment.
    """

    def next_change(self, inp: PolicyInput, running: np.ndarray) -> float: ...


def free_capacity(inp: PolicyInput) -> np.ndarray:
    """Accelerators per flavor not held by rows that are running now."""
    run = inp.running >= 0
    used = np.bincount(inp.running[run], weights=inp.scale_factor[run], minlength=inp.num_flavors)
    return inp.capacity - used


def subset_input(inp: PolicyInput, rows: np.ndarray) -> PolicyInput:
    """The same input restricted to ``rows`` (the policy's row i is ``rows[i]`` here)."""
    per_row = (
        "job",
        "scale_factor",
        "weight",
        "arrival",
        "attained",
        "steps_done",
        "steps_total",
        "running",
        "deadline",
        "tenant",
        "job_class",
        "job_mask_index",
    )
    fields = {k: getattr(inp, k)[rows] for k in per_row}
    return PolicyInput(
        now=inp.now,
        class_throughput=inp.class_throughput,
        feasible_masks=inp.feasible_masks,
        capacity=inp.capacity,
        price=inp.price,
        extras=inp.extras,
        **fields,
    )


def restrict_flavors(inp: PolicyInput, allowed: np.ndarray) -> PolicyInput:
    """The same input with each row's feasible flavors narrowed to ``allowed`` ((n, F) bool)."""
    combined = inp.feasible_masks[inp.job_mask_index] & allowed
    if len(combined) == 0:
        return inp
    masks, index = np.unique(combined, axis=0, return_inverse=True)
    return replace(inp, feasible_masks=masks, job_mask_index=index.reshape(-1).astype(np.int64))
