"""Which flavors each job may use, and why not: class feasibility and per-profile check masks.

``Admission`` owns the (C, F) class rates (``ClassFeasibility``) and a cache of flavor masks per
data profile, asked of the ``ProfileCheck``s (e.g. data residency) and kept up to date as checks
whose answers change over time move on (``sync``). Rows a check's change may reach are marked
stale and recomputed only when a job needs them. The Scheduler asks it whether arrivals may run
anywhere (``legal``), why not (``why_not``) and where each row may run this round (``usable``).
Recording a rejection is the lifecycle's business (``scheduler/lifecycle.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from computepool.admission.feasibility import ClassFeasibility, class_feasibility
from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.model.status import Status
from computepool.model.throughput import Throughputs
from computepool.model.workload import Workload


class ProfileCheck(Protocol):
    """An admission check on a job's datasets (e.g. data residency): which flavors are legal.

    A check whose answer changes over time (approvals that expire, counters per calendar
    year) may also have any of these methods; the Scheduler calls those it finds:

    - ``sync(now) -> bool``: called first in every round; True means masks computed before
      may no longer hold (the Scheduler recomputes them and rejects active jobs left with no
      legal flavor);
    - ``next_change(now) -> float``: when the answers change next by themselves (a round is
      held then);
    - ``confirm_starts(workload, jobs, flavors, now) -> (ok, delay_s, cost_usd)``: the last
      word on each start of a round, in order; refused starts stay queued; ``delay_s`` goes
      into ``RoundPlan.start_delay`` (e.g. data transfer) and ``cost_usd`` onto the job's cost;
    - ``on_reject(job, status, now)``: told about each rejection (audit);
    - ``policy_extras(pool, workload) -> dict``: merged into ``PolicyInput.extras``;
    - ``flavor_masks(profiles, pool) -> (P, F) bool``: many profiles' masks at once (the same
      answers as ``flavor_mask``; the Status is then asked only of profiles a job is rejected
      for);
    - ``affected_profiles(profiles) -> (P,) bool``: after ``sync`` returned True, which of
      these profiles its changes can reach (only those are recomputed; without it, all).
    """

    def flavor_mask(
        self, datasets: tuple[Dataset, ...], pool: Pool
    ) -> tuple[np.ndarray, Status]: ...


def class_scale_factors(workload: Workload) -> np.ndarray:
    """(C,) accelerators per device set (gang size) of each job class."""
    return np.array([c.scale_factor for c in workload.classes], dtype=np.int64)


def usable_flavors(
    rates: np.ndarray, masks: np.ndarray, job_class: np.ndarray, profile: np.ndarray
) -> np.ndarray:
    """(n, F): flavors each job can run on (rate > 0) and its data may use (mask)."""
    return (rates[job_class] > 0) & masks[profile]


def forbid_illegal(new: np.ndarray, masks: np.ndarray, profile: np.ndarray) -> None:
    """Unset (-1) each entry of ``new`` (flavor per row, rows' data ``profile``) whose flavor the
    profile's mask forbids: checks hold whatever a policy proposed."""
    on = np.nonzero(new >= 0)[0]
    legal = masks[profile[on], new[on]]
    new[on[~legal]] = -1


def rejection_status(st: Status) -> Status:
    """The status a rejection is recorded with: never a success."""
    if st.ok:
        return Status.unresolvable(st.reason or "no legal flavor", st.source or "admission")
    return st


class Admission:
    """Class rates plus per-profile check masks, grown with the workload (a live pool)."""

    def __init__(
        self,
        pool: Pool,
        workload: Workload,
        throughputs: Throughputs,
        checks: Sequence[ProfileCheck] = (),
        feasibility: ClassFeasibility | None = None,
    ) -> None:
        self.pool, self.workload, self.throughputs = pool, workload, throughputs
        self.checks = tuple(checks)
        self.feas = feasibility or class_feasibility(workload.classes, pool, throughputs)
        #: Gang size per job class.
        self.scale_factor = class_scale_factors(workload)
        F = len(pool.flavors)
        #: Flavor mask per data profile; a stale row is recomputed when a job needs it.
        self.masks = np.zeros((0, F), dtype=bool)
        self.stale = np.zeros(0, dtype=bool)
        self._status: list[Status | None] = []

    @property
    def rates(self) -> np.ndarray:
        """(C, F) rates per class, 0 where the class cannot run."""
        return self.feas.rates

    def refresh_classes(self) -> None:
        """Recompute class feasibility when the workload has grown new classes."""
        if self.feas.rates.shape[0] < len(self.workload.classes):
            self.feas = class_feasibility(self.workload.classes, self.pool, self.throughputs)
            self.scale_factor = class_scale_factors(self.workload)

    def invalidate(self) -> None:
        """Forget the per-profile masks (a check's answers changed); recomputed when needed."""
        self.stale[:] = True
        self._status = [None] * len(self._status)

    def sync(self, now: float, active_jobs: np.ndarray) -> bool:
        """Let time-dependent checks move to ``now``; True when masks may have changed.

        Only the masks of profiles that ``active_jobs`` use and that a check's changes can
        reach are recomputed now; every other row is marked stale (recomputed if a job needs
        it)."""
        changed = False
        for check in self.checks:
            sync = getattr(check, "sync", None)
            if sync is None or not sync(now):
                continue
            changed = True
            narrow = getattr(check, "affected_profiles", None)
            if narrow is None:
                self.invalidate()
                continue
            P = len(self.masks)
            used = np.unique(self.workload.data_profile[active_jobs])
            fresh = used[(used < P)]
            fresh = fresh[~self.stale[fresh]]
            hit = np.asarray(narrow([self.workload.profiles[p] for p in fresh]), dtype=bool)
            keep = np.zeros(P, dtype=bool)
            keep[fresh[~hit]] = True
            self.stale |= ~keep
            for p in np.nonzero(~keep)[0]:
                self._status[p] = None
        return changed

    def profile_masks(self, need: np.ndarray) -> np.ndarray:
        """(M, F) flavor masks per data profile; the rows of ``need`` are up to date, others
        may be stale (no job uses them now)."""
        P, F = len(self.workload.profiles), len(self.pool.flavors)
        if len(self.masks) < P:
            grow = P - len(self.masks)
            self.masks = np.vstack([self.masks, np.ones((grow, F), dtype=bool)])
            self.stale = np.concatenate([self.stale, np.ones(grow, dtype=bool)])
            self._status += [None] * grow
        todo = need[self.stale[need]]
        if len(todo):
            todo = np.unique(todo)
            profiles = [self.workload.profiles[p] for p in todo]
            mask = np.ones((len(todo), F), dtype=bool)
            for check in self.checks:
                many = getattr(check, "flavor_masks", None)
                if many is not None:
                    mask &= np.asarray(many(profiles, self.pool), dtype=bool).reshape(-1, F)
                else:
                    rows = [check.flavor_mask(d, self.pool)[0] for d in profiles]
                    mask &= np.array(rows, dtype=bool).reshape(-1, F)
            self.masks[todo] = mask
            self.stale[todo] = False
        return self.masks

    def legal(self, jobs: np.ndarray) -> np.ndarray:
        """(n,) bool: each job has some flavor it can run on and its data may use."""
        prof = self.workload.data_profile[jobs]
        masks = self.profile_masks(prof)
        return usable_flavors(self.rates, masks, self.workload.job_class[jobs], prof).any(axis=1)

    def status_of(self, p: int) -> Status:
        """Why profile ``p``'s mask is what it is (asked only when a job is rejected)."""
        st = self._status[p]
        if st is None:
            st = Status.success()
            for check in self.checks:
                _m, s = check.flavor_mask(self.workload.profiles[p], self.pool)
                # keep the first refusal; else the first restriction that names its rule
                if st.ok and (not s.ok or (s.source and not st.source)):
                    st = s
            self._status[p] = st
        return st

    def why_not(self, j: int) -> Status:
        """Why job ``j`` has no flavor it may run on."""
        c, p = int(self.workload.job_class[j]), int(self.workload.data_profile[j])
        st = self.feas.status[c]
        if st.ok:
            st = self.status_of(p)
        if st.ok:
            # Each check alone allows some flavor, but none the job can run on: name the
            # check's restricting rule when it gave one (e.g. ``residency:CN-1``).
            why = "no flavor is both able to run the job and allowed for its data"
            st = Status.unresolvable(
                f"{why}: {st.reason}" if st.reason else why, st.source or "admission"
            )
        return st
