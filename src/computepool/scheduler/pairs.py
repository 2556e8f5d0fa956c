"""Space sharing in the round loop: pair rates per class, and the pairs the mechanism tracks.

A pair is two jobs co-running on one device set of a flavor (same scale factor). Like Gavel, the
mechanism treats a pair as an entity of its own: its allocated share, the time it has run since
the last reset and its deficit are kept per flavor, apart from each job's time alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from computepool.model.allocation import PairShares
from computepool.model.throughput import ClassKey, Throughputs
from computepool.scheduler.mechanism import assign_with_pairs
from computepool.scheduler.state import ActiveSet


def class_pair_rates(
    classes: Sequence[ClassKey], accelerators: Sequence[str], throughputs: Throughputs, rates
) -> np.ndarray:
    """(C, C, F): rate of class ``a`` while it shares a device set of flavor ``f`` with class
    ``b``; 0 unless both may run on ``f`` alone (``rates`` > 0), scale factors match and the pair
    is measured with both rates > 0 (Gavel's table; 0 there means out of memory)."""
    C, F = len(classes), len(accelerators)
    out = np.zeros((C, C, F))
    by_accel: dict[str, list[int]] = {}
    for f, acc in enumerate(accelerators):
        by_accel.setdefault(acc, []).append(f)
    for acc, flavors in by_accel.items():
        for a in range(C):
            for b in range(a, C):
                if classes[a][1] != classes[b][1]:
                    continue
                hit = throughputs.pair_rate(classes[a], classes[b], acc)
                if hit is None or hit[0] <= 0 or hit[1] <= 0:
                    continue
                for f in flavors:
                    if rates[a, f] > 0 and rates[b, f] > 0:
                        out[a, b, f], out[b, a, f] = hit[0], hit[1]
    return out


@dataclass
class PairState:
    """Pairs with a share in the allocation in force, by job id (``job_a < job_b``)."""

    job_a: np.ndarray
    job_b: np.ndarray
    share: np.ndarray  # (E, F)
    received: np.ndarray  # (E, F) seconds run together since the last reset
    deficit: np.ndarray  # (E, F)

    @classmethod
    def empty(cls, num_flavors: int) -> PairState:
        z = np.zeros(0, dtype=np.int64)
        e = np.zeros((0, num_flavors))
        return cls(z, z.copy(), e, e.copy(), e.copy())

    def __len__(self) -> int:
        return len(self.job_a)

    def index(self, job_a: np.ndarray, job_b: np.ndarray) -> np.ndarray:
        """Entity index of each (a, b) pair of job ids (either order); -1 if not tracked."""
        lo, hi = np.minimum(job_a, job_b), np.maximum(job_a, job_b)
        if len(self) == 0:
            return np.full(len(lo), -1, dtype=np.int64)
        key = self.job_a * (1 << 32) + self.job_b
        want = lo * (1 << 32) + hi
        order = np.argsort(key)
        pos = np.minimum(np.searchsorted(key[order], want), len(key) - 1)
        idx = order[pos]
        return np.where(key[idx] == want, idx, -1)

    def add_time(
        self, jobs: np.ndarray, mates: np.ndarray, flavor: np.ndarray, ran: np.ndarray
    ) -> None:
        """Time run together goes to the pair (given once per job: counted for ``job < mate``)."""
        idx = self.index(jobs, mates)
        ok = (idx >= 0) & (jobs < mates)
        np.add.at(self.received, (idx[ok], flavor[ok]), ran[ok])

    def keep(self, mask: np.ndarray) -> None:
        for col in ("job_a", "job_b", "share", "received", "deficit"):
            setattr(self, col, getattr(self, col)[mask])

    def drop_jobs(self, jobs: np.ndarray) -> None:
        """Forget pairs with a finished (or failed) job."""
        if len(self) and len(jobs):
            self.keep(~(np.isin(self.job_a, jobs) | np.isin(self.job_b, jobs)))

    def replaced(self, pairs: PairShares, jobs: np.ndarray, start_received: float) -> PairState:
        """The pairs of a new allocation (rows of ``pairs`` index ``jobs``); deficits of pairs that
        stay carry over, as Gavel keeps them per job combination."""
        F = self.share.shape[1]
        ja, jb = jobs[pairs.a], jobs[pairs.b]
        lo, hi = np.minimum(ja, jb), np.maximum(ja, jb)
        key = lo * (1 << 32) + hi
        uk, inv = np.unique(key, return_inverse=True)
        share = np.zeros((len(uk), F))
        np.add.at(share, (inv.reshape(-1), pairs.flavor), pairs.share)
        new = PairState(
            uk >> 32,
            uk & ((1 << 32) - 1),
            share,
            np.full((len(uk), F), start_received),
            np.zeros((len(uk), F)),
        )
        old = self.index(new.job_a, new.job_b)
        seen = old >= 0
        new.deficit[seen] = self.deficit[old[seen]]
        return new


def assign_round(
    pairs: PairState,
    active: ActiveSet,
    row_of: np.ndarray,
    usable: np.ndarray,
    pair_rates: np.ndarray,
    job_class: np.ndarray,
    scale_factor: np.ndarray,
    capacity: np.ndarray,
    flavor_time: np.ndarray,
    flavor_order: np.ndarray,
    deficit_limit: float = float("inf"),
) -> tuple[np.ndarray, np.ndarray]:
    """Flavor and partner (job id, -1 alone) of each active row, singles and pairs competing
    (``mechanism.assign_with_pairs``). ``usable`` (n, F) marks where each row may run now."""
    a, p = active, pairs
    pa, pb = row_of[p.job_a], row_of[p.job_b]
    ok = (pa >= 0) & (pb >= 0)
    pa, pb = np.where(ok, pa, 0), np.where(ok, pb, 0)
    p_usable = usable[pa] & usable[pb] & ok[:, None]
    p_usable &= pair_rates[job_class[p.job_a], job_class[p.job_b]] > 0
    partner_row = np.where(a.partner >= 0, row_of[np.maximum(a.partner, 0)], -1)
    new, mate = assign_with_pairs(
        (a.share, usable, a.received, a.deficit),
        (pa, pb, p.share, p_usable, p.received, p.deficit),
        scale_factor,
        capacity,
        a.running,
        partner_row,
        flavor_time,
        flavor_order,
        deficit_limit,
    )
    return new, np.where(mate >= 0, a.job[np.maximum(mate, 0)], -1)
