"""Allocation: for each job, the share of time it should hold each flavor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Allocation:
    """``shares[i, f]`` is the fraction of wall-clock time job ``job_ids[i]`` should run on flavor ``f``.

    Rows sum to at most 1; ``sum_i shares[i, f] * scale_factor[i] <= capacity[f]``.
    """

    job_ids: np.ndarray
    shares: np.ndarray

    def __post_init__(self) -> None:
        if self.shares.ndim != 2 or self.shares.shape[0] != len(self.job_ids):
            raise ValueError(
                f"shares has shape {self.shares.shape}, expected ({len(self.job_ids)}, F)"
            )

    @classmethod
    def empty(cls, num_flavors: int) -> Allocation:
        return cls(np.zeros(0, dtype=np.int64), np.zeros((0, num_flavors)))

    def as_dict(self) -> dict[int, dict[int, float]]:
        out: dict[int, dict[int, float]] = {}
        for row, jid in enumerate(self.job_ids):
            nz = np.nonzero(self.shares[row] > 1e-9)[0]
            out[int(jid)] = {int(f): float(self.shares[row, f]) for f in nz}
        return out
