"""What a live backend reads from a ``RoundPlan``: the starts, each with its device slots."""

from __future__ import annotations

from computepool.scheduler.interfaces import Placement, RoundPlan


def placed_starts(
    plan: RoundPlan, backend: str, every_worker_slotted: bool = False
) -> list[tuple[int, int, Placement, float]]:
    """(job, flavor index, placement, start delay s) for every start in ``plan``.

    A live backend runs workers on devices, so every start must come with a placement with
    workers (``every_worker_slotted``: each of them naming device slots); a ValueError names
    the job otherwise."""
    where = {p.job: p for p in plan.placements}
    delays = (
        plan.start_delay.tolist()
        if len(plan.start_delay) == len(plan.start)
        else [0.0] * len(plan.start)
    )
    out = []
    for j, f, delay in zip(plan.start.tolist(), plan.start_flavor.tolist(), delays, strict=True):
        p = where.get(int(j))
        bare = every_worker_slotted and any(not dev for _, dev in p.workers) if p else False
        if p is None or not p.workers or bare:
            raise ValueError(f"job {j}: the {backend} backend needs a placement with device slots")
        out.append((int(j), int(f), p, float(delay)))
    return out
