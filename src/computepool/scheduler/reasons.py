"""Why a waiting job waits: a ``Status`` naming what held it back in the last round (the
quota gate, placement, an admission check's last word, or capacity the policy gave to
others), kube-scheduler's "every no carries its reason"."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from computepool.model.pool import Pool
from computepool.model.status import Status

#: What refused a start the policy proposed, for ``RoundRefusals.refused``.
PLACEMENT, CHECK = "placement", "check"


@dataclass
class RoundRefusals:
    """What the last round refused, by job: starts the placer or a check turned down (with the
    flavor proposed), and the jobs the round's gate let in (None: no gate)."""

    refused: dict[int, tuple[str, int]] = field(default_factory=dict)
    gate_input: object | None = None
    let_in: frozenset[int] | None = None

    def clear(self) -> None:
        self.refused, self.gate_input, self.let_in = {}, None, None


def free_per_flavor(pool: Pool, running: np.ndarray, scale_factor: np.ndarray) -> np.ndarray:
    """Accelerators not held by a running row, per flavor."""
    used = np.zeros(len(pool.flavors))
    on = running >= 0
    np.add.at(used, running[on], scale_factor[on])
    return pool.capacity - used


def capacity_status(
    pool: Pool, usable: np.ndarray, free: np.ndarray, need: float, policy: str
) -> Status:
    """Waiting for capacity: where it could run, how much is free there, and who decided."""
    flavors = np.nonzero(usable)[0]
    if len(flavors) == 0:
        return Status.unschedulable("no flavor it may use is in the pool now", "admission")
    ranked = flavors[np.argsort(-free[flavors], kind="stable")]
    shown = ", ".join(
        f"{pool.flavors[f].name} {max(free[f], 0):g} free of {pool.capacity[f]:g}"
        for f in ranked[:3]
    )
    more = f" (+{len(ranked) - 3} more flavors)" if len(ranked) > 3 else ""
    if free[ranked[0]] + 1e-9 >= need:
        return Status.unschedulable(
            f"room exists ({shown}{more}) but policy {policy!r} gave this round to jobs ahead "
            f"of it; needs {need:g}",
            f"policy:{policy}",
        )
    return Status.unschedulable(
        f"waiting for {need:g} accelerators on one flavor: {shown}{more}", "capacity"
    )


def placement_status(pool: Pool, flavor: int, free: float, workers: int, per: float) -> Status:
    shape = f"{workers} worker(s) x {per:g}" if workers > 1 else f"{per:g} accelerator(s)"
    if free + 1e-9 >= workers * per:
        text = (
            f"placement: {pool.flavors[flavor].name} has {free:g} free but no node "
            f"(for a gang: no set of nodes in one island first, then any) fits {shape}: "
            "the free accelerators are fragmented"
        )
    else:
        text = f"placement: {pool.flavors[flavor].name} has {free:g} free, {shape} needed"
    return Status.unschedulable(text, "placement")


def check_status(pool: Pool, flavor: int) -> Status:
    return Status.unschedulable(
        f"an admission check refused the start on {pool.flavors[flavor].name} this round "
        "(e.g. a residency transfer limit); it is tried again next round",
        "check",
    )
