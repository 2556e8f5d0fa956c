"""Allocation: for each job, the share of time it should hold each flavor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairShares:
    """Space sharing: rows ``a[k]`` and ``b[k]`` co-run on one set of ``flavor[k]`` accelerators
    for ``share[k]`` of wall-clock time (each at its pair rate). Row indices as in ``Allocation``."""

    a: np.ndarray
    b: np.ndarray
    flavor: np.ndarray
    share: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    @classmethod
    def empty(cls) -> PairShares:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), z.copy(), np.zeros(0))


@dataclass(frozen=True)
class Allocation:
    """Sparse (row, flavor, share) triples over the rows of a ``PolicyInput``.

    ``share`` is the fraction of wall-clock time the row's job should run on ``flavor``; a row's
    shares sum to at most 1 and ``sum(share * scale_factor)`` per flavor is at most its capacity.
    ``priority`` (optional) orders who runs first in a round: policies that decide an order
    themselves (FIFO, Tiresias) set it; for time-share policies (the LPs) the round mechanism
    derives it from share / time received, as Gavel does.
    """

    rows: np.ndarray
    flavor: np.ndarray
    share: np.ndarray
    priority: np.ndarray | None = None
    #: Pairs of rows sharing accelerators (space-sharing policies); ``None`` for the rest.
    pairs: PairShares | None = None

    def __post_init__(self) -> None:
        n = len(self.rows)
        if len(self.flavor) != n or len(self.share) != n:
            raise ValueError("allocation arrays must have equal length")
        if self.priority is not None and len(self.priority) != n:
            raise ValueError("allocation priority must match rows")

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls) -> Allocation:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.copy(), np.zeros(0), priority=np.zeros(0))

    @classmethod
    def from_dense(cls, shares: np.ndarray, tol: float = 1e-6) -> Allocation:
        rows, flavor = np.nonzero(shares > tol)
        return cls(
            rows.astype(np.int64), flavor.astype(np.int64), shares[rows, flavor].astype(float)
        )

    def dense(self, num_rows: int, num_flavors: int) -> np.ndarray:
        out = np.zeros((num_rows, num_flavors))
        np.add.at(out, (self.rows, self.flavor), self.share)
        return out

    def usage(self, scale_factor: np.ndarray, num_flavors: int) -> np.ndarray:
        """Accelerators used per flavor (time-averaged) by this allocation."""
        return np.bincount(
            self.flavor, weights=self.share * scale_factor[self.rows], minlength=num_flavors
        )
