"""Multi-model packing: replicas that need less than a device share one.

A packed replica takes a power-of-two fraction of one device (1/8, 1/4, 1/2) with the same share
of its memory, FLOPs and bandwidth; replicas of several models then fill a device. With
power-of-two sizes, first-fit decreasing never wastes room: every device but the last is full,
so ``ceil(sum of fractions)`` devices hold them all (``devices_needed``), which is what the
simulator counts; ``pack`` gives the assignment itself (live placement, tests). A tensor-parallel
replica holds ``tp`` whole devices of one node and is never packed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EPS = 1e-9


def is_power_of_two_fraction(x: float) -> bool:
    if not 0 < x <= 1:
        return False
    k = round(-math.log2(x))
    return abs(x - 2.0**-k) < EPS


def devices_needed(fractions: Sequence[float]) -> int:
    """Devices first-fit decreasing uses for these power-of-two fractions."""
    return math.ceil(sum(fractions) - EPS) if fractions else 0


def extra_devices(current_sum: float, add: float) -> int:
    """Devices to open when a replica of fraction ``add`` joins replicas summing to
    ``current_sum`` on one flavor (0 when an open device has room)."""
    if add >= 1.0 - EPS:
        return int(round(add))
    return math.ceil(current_sum + add - EPS) - math.ceil(current_sum - EPS)


def pack(fractions: Sequence[float]) -> list[list[int]]:
    """First-fit decreasing: a list of devices, each the indices of the replicas on it.

    Raises ValueError for a fraction that is not a power-of-two share of one device.
    """
    for i, f in enumerate(fractions):
        if not is_power_of_two_fraction(f):
            raise ValueError(f"replica {i}: fraction {f} is not 1/2^k of a device")
    order = sorted(range(len(fractions)), key=lambda i: -fractions[i])
    bins: list[list[int]] = []
    room: list[float] = []
    for i in order:
        f = fractions[i]
        for b, r in enumerate(room):
            if r + EPS >= f:
                bins[b].append(i)
                room[b] = r - f
                break
        else:
            bins.append([i])
            room.append(1.0 - f)
    return bins
