"""The residency admission check (Kueue's AdmissionCheck): the Scheduler's ``ProfileCheck``.

One ``ResidencyCheck`` serves the simulator and the live pool alike. The Scheduler asks it:

- ``flavor_mask(datasets, pool)``: which flavors a data profile may use *now*, with a Status
  naming the rule (``residency:CN-1``) when none may;
- ``sync(now)``: whether its answers changed since it was last asked (an approval started or
  expired, a new calendar year reset the person counters, an admin changed approvals, a start
  moved a counter), so the Scheduler recomputes its masks;
- ``confirm_starts(workload, jobs, flavors, now)``: the last word on each start of a round, in
  order (so two starts cannot together break a person threshold each fits alone). It counts
  exports, writes an audit record per start, and returns the transfer delay and egress charge
  of each start whose data sits in another region;
- ``on_reject(job, status, now)``: audit records for rejections;
- ``policy_extras(pool, workload)``: per (profile, flavor) transfer seconds and egress USD, so
  policies see what moving data costs;
- ``flavor_masks(profiles, pool)``: many profiles' masks at once, as arrays
  (``residency_masks.py``), and ``affected_profiles(profiles)``: which of them the changes
  reported by the last ``sync`` can reach (``residency_changes.py``), so a round recomputes
  only those.

The judgements themselves are the pure functions of ``judge.py``. The live server calls the
check from its API threads (submissions, ``/route``, approvals) and its scheduler thread: every
public method holds the check's lock.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from computepool.admission.approvals import Approval, ApprovalBook, PersonCounters, TimeBase
from computepool.admission.audit import ALLOWED, REJECTED, AuditLog, Decision
from computepool.admission.judge import (
    ALLOW_EMPTY,
    GrantScan,
    ProfileVerdict,
    State,
    Verdict,
    first_refusal,
    judge_dataset,
    judge_profile,
    scan_grants,
    scan_key,
)
from computepool.admission.residency_changes import (
    Changes,
    affected,
    approvals_diff,
    dependencies,
)
from computepool.admission.residency_masks import (
    counter_kinds,
    profile_region_masks,
    shares_counter,
)
from computepool.admission.rulebook import Rulebook, load_rulebook
from computepool.admission.transfer import profile_transfer_matrices, transfer_for
from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.model.region import Region
from computepool.model.status import Status, StatusCode
from computepool.model.workload import Workload
from computepool.policies.cost_region import flavor_extra_cost_per_hour

NO_DATASETS = Decision(ALLOWED, (), (), (), "no datasets declared")
#: Cached verdicts kept at most (a live server judges every submission's new objects).
CACHE_LIMIT = 200_000
T = TypeVar("T")


def _locked(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(self: ResidencyCheck, *args: Any, **kw: Any) -> T:
        with self._lock:
            return fn(self, *args, **kw)

    return wrapper


def residency_status(
    datasets: tuple[Dataset, ...], verdicts: Mapping[str, ProfileVerdict]
) -> Status:
    """The Status of a profile's mask: OK (naming restricting rules) or UNRESOLVABLE."""
    allowed = [r for r, v in verdicts.items() if v.allowed]
    if allowed:
        restricting = sorted({v.forbidden_by for v in verdicts.values() if not v.allowed} - {""})
        if not restricting:
            return Status.success()
        src = "residency:" + ",".join(restricting)
        where = ", ".join(sorted(allowed))
        return Status(
            StatusCode.OK, f"data allowed only in {where} ({', '.join(restricting)})", src
        )
    rules = sorted({v.forbidden_by for v in verdicts.values()} - {""}) or ["UNMATCHED"]
    reasons = "; ".join(sorted({v.reason for v in verdicts.values()}))
    return Status.unresolvable(
        f"no region of the pool may legally process its data: {reasons}",
        "residency:" + ",".join(rules),
    )


class ResidencyCheck:
    """Residency rules + approvals + person counters, answering the Scheduler over time."""

    name = "residency"

    def __init__(
        self,
        rulebook: Rulebook | None = None,
        pool: Pool | None = None,
        approvals: ApprovalBook | None = None,
        timebase: TimeBase | None = None,
        regions: Mapping[str, Region] | None = None,
        transfers: bool = True,
        carbon_usd_per_t: float = 0.0,
        now: float = 0.0,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        keep_audit: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self.rulebook = rulebook or load_rulebook()
        self.pool = pool
        self.approvals = approvals or ApprovalBook()
        self.timebase = timebase or TimeBase()
        self.counters = PersonCounters()
        if regions is None:
            from computepool.catalog.regions import load_regions

            regions = load_regions()
        #: Regions outside the pool where datasets may be stored (jurisdiction, egress price).
        self.regions: dict[str, Region] = dict(regions)
        self.transfers = transfers
        self.carbon_usd_per_t = carbon_usd_per_t
        self.audit = AuditLog()
        self.on_record = on_record
        #: False (the live pool, whose records go to the store): records are not kept here.
        self.keep_audit = keep_audit
        self.now = now
        #: datasets -> {jurisdiction: verdict}, valid until the state changes.
        self._cache: dict[tuple[Dataset, ...], dict[str, ProfileVerdict]] = {}
        #: (id(dataset), jurisdiction) -> (dataset, Verdict); scan_key -> Verdict where the
        #: verdict is the same for every dataset of the key.
        self._memo: dict[tuple[int, str], tuple[Dataset, Verdict]] = {}
        self._shared: dict[tuple, Verdict] = {}
        #: id(profile) -> (profile, mask, Status)
        self._masks: dict[int, tuple[tuple[Dataset, ...], np.ndarray, Status]] = {}
        #: scan_key -> GrantScan, valid until the approvals on record change.
        self._scans: dict[tuple, GrantScan] = {}
        self._kind_of = counter_kinds(self.rulebook)
        self._deps = dependencies(self.rulebook)
        self._state: State | None = None
        self._jur: tuple[int, dict[str, str]] = (-1, {})
        self._regions_of: tuple[int, list[str]] = (-1, [])
        self._dirty = True
        self._next_change = -math.inf
        self._synced_at = -math.inf
        #: Changes since the last ``sync`` (pending) and those it reported (for
        #: ``affected_profiles``).
        self._pending = Changes(everything=True)
        self._reported = Changes(everything=True)
        self._staged: dict[int, str] = {}
        self._extras_for: tuple[int, int] = (-1, -1)
        self._extras: dict[str, np.ndarray] = {}

    # ---- state -------------------------------------------------------------------------
    def state(self) -> State:
        if self._state is None or self._state.now != self.now:
            self._state = State(self.approvals, self.counters, self.now, self.timebase)
        return self._state

    def _jurisdictions(self, pool: Pool) -> dict[str, str]:
        if self._jur[0] != id(pool):
            known = {**self.regions, **pool.regions}
            self._jur = (id(pool), {name: r.jurisdiction for name, r in known.items()})
        return self._jur[1]

    def _changed(
        self,
        approvals: set[Approval] | frozenset[Approval] = frozenset(),
        counters: set[tuple[str, str, str]] | frozenset = frozenset(),
        everything: bool = False,
    ) -> None:
        """Forget cached verdicts; remember what changed for ``affected_profiles``."""
        self._cache.clear()
        self._memo.clear()
        self._shared.clear()
        self._masks.clear()
        if approvals or everything:
            self._scans.clear()
        self._state = None
        self._dirty = True
        self._pending.everything |= everything
        self._pending.approvals |= set(approvals)
        self._pending.counters |= set(counters)

    @_locked
    def add_approval(self, approval: Approval) -> None:
        self.approvals = self.approvals.added(approval)
        self._changed(approvals={approval})

    @_locked
    def revoke_approval(self, approval_id: str, at: float | None = None) -> None:
        old = self.approvals
        self.approvals = old.revoked(approval_id, self.now if at is None else at)
        self._changed(approvals=approvals_diff(old, self.approvals))

    @_locked
    def set_approvals(self, book: ApprovalBook, now: float | None = None) -> None:
        """Replace the approvals on record; ``now`` (e.g. the wall clock of an admin's
        request) moves the check's time forward so a revocation holds from that instant."""
        old, self.approvals = self.approvals, book
        if now is not None and now > self.now:
            self.now = now
        diff = approvals_diff(old, book)
        if diff:
            self._changed(approvals=diff)

    @_locked
    def restore(self, book: ApprovalBook, counters: PersonCounters) -> None:
        """Approvals and person counters from a store (a live server starting)."""
        self.approvals, self.counters = book, counters
        self._changed(everything=True)

    # ---- Scheduler hooks ---------------------------------------------------------------
    @_locked
    def sync(self, now: float) -> bool:
        """Move to ``now``; True when masks computed before may no longer hold
        (``affected_profiles`` then says which)."""
        self.now = now
        if now >= self._next_change:
            new_year = self.timebase.year(now) != self.timebase.year(self._synced_at)
            self._changed(
                approvals=set(self.approvals.changed_between(self._synced_at, now)),
                everything=new_year,
            )
        self._synced_at = now
        if not self._dirty:
            return False
        self._next_change = min(self.approvals.next_change(now), self.timebase.next_year_start(now))
        self._dirty = False
        self._reported, self._pending = self._pending, Changes()
        return True

    @_locked
    def affected_profiles(self, profiles: Sequence[tuple[Dataset, ...]]) -> np.ndarray:
        """(P,) bool: profiles whose masks the changes the last ``sync`` reported may alter."""
        return affected(profiles, self._reported, self._deps)

    @_locked
    def next_change(self, now: float) -> float:
        """When the answers change next without anything happening (expiry, new year)."""
        return max(self._next_change, now) if math.isfinite(self._next_change) else math.inf

    @_locked
    def verdict(self, datasets: tuple[Dataset, ...], region: str, pool: Pool) -> ProfileVerdict:
        """The verdict for ``datasets`` in ``region`` now (it depends on the jurisdiction)."""
        jur = self._jurisdictions(pool)
        j = jur.get(region, region)
        per = self._cache.get(datasets)
        if per is None:
            if len(self._cache) > CACHE_LIMIT:
                self._cache.clear()
            per = self._cache[datasets] = {}
        v = per.get(j)
        if v is None:
            v = per[j] = self._judge(datasets, region, jur)
        return v

    def _judge(
        self, datasets: tuple[Dataset, ...], region: str, jur: Mapping[str, str]
    ) -> ProfileVerdict:
        return judge_profile(
            datasets, region, jur, self.rulebook, self.state(), self._judged, self._scan
        )

    def _judged(self, ds: Dataset, leg: str) -> Verdict:
        """One dataset in one jurisdiction now, cached per dataset object, and per scan key
        where no name or person count enters the verdict."""
        if len(self._memo) > CACHE_LIMIT:
            self._memo.clear()
        hit = self._memo.get((id(ds), leg))
        if hit is not None and hit[0] is ds:
            return hit[1]
        sc = self._scan(ds, leg)
        k = scan_key(ds, leg, self.approvals.named) if sc.name_free(ds.origin, leg) else None
        v = self._shared.get(k) if k is not None else None
        if v is None:
            v = judge_dataset(ds, leg, self.rulebook, self.state(), scan=sc)
            if k is not None:
                self._shared[k] = v
        self._memo[(id(ds), leg)] = (ds, v)
        return v

    def _scan(self, ds: Dataset, dest: str) -> GrantScan:
        k = scan_key(ds, dest, self.approvals.named)
        sc = self._scans.get(k)
        if sc is None:
            sc = self._scans[k] = scan_grants(ds, dest, self.rulebook, self.state())
        return sc

    @_locked
    def region_verdicts(
        self, datasets: tuple[Dataset, ...], pool: Pool
    ) -> dict[str, ProfileVerdict]:
        jur = self._jurisdictions(pool)
        per = self._cache.get(datasets)
        if per is None:
            if len(self._cache) > CACHE_LIMIT:
                self._cache.clear()
            per = self._cache[datasets] = {}
        out = {}
        for r in self._pool_regions(pool):
            j = jur.get(r, r)
            v = per.get(j)
            if v is None:
                v = per[j] = self._judge(datasets, r, jur)
            out[r] = v
        return out

    def _pool_regions(self, pool: Pool) -> list[str]:
        if self._regions_of[0] != id(pool):
            self._regions_of = (id(pool), sorted({f.region for f in pool.flavors}))
        return self._regions_of[1]

    @_locked
    def flavor_masks(self, profiles: Sequence[tuple[Dataset, ...]], pool: Pool) -> np.ndarray:
        """(P, F) legal flavors of many profiles now (the same answers as ``flavor_mask``)."""
        regions = self._pool_regions(pool)
        jur = self._jurisdictions(pool)
        rmask, full = profile_region_masks(
            profiles, regions, jur, self.state(), self._scan, self._kind_of
        )
        for p in np.nonzero(full)[0]:
            v = self.region_verdicts(profiles[p], pool)
            rmask[p] = [v[r].allowed for r in regions]
        col = {r: i for i, r in enumerate(regions)}
        return rmask[:, [col[f.region] for f in pool.flavors]]

    @_locked
    def flavor_mask(self, datasets: tuple[Dataset, ...], pool: Pool) -> tuple[np.ndarray, Status]:
        if not datasets:
            return np.ones(len(pool.flavors), dtype=bool), Status.success()
        if len(self._masks) > CACHE_LIMIT:
            self._masks.clear()
        hit = self._masks.get(id(datasets))
        if hit is not None and hit[0] is datasets and hit[1].shape[0] == len(pool.flavors):
            return hit[1], hit[2]
        if shares_counter(datasets, self._kind_of):
            verdicts = self.region_verdicts(datasets, pool)
        else:  # the same answers without building full verdicts
            jur = self._jurisdictions(pool)
            per: dict[str, ProfileVerdict] = {}
            verdicts = {}
            for r in self._pool_regions(pool):
                j = jur.get(r, r)
                v = per.get(j)
                if v is None:
                    no = first_refusal(datasets, j, jur, self.rulebook, self._judged)
                    v = per[j] = (
                        ALLOW_EMPTY
                        if no is None
                        else ProfileVerdict(False, (), (), (), (), no[1], forbidden_by=no[0])
                    )
                verdicts[r] = v
        mask = np.fromiter(
            (verdicts[f.region].allowed for f in pool.flavors), dtype=bool, count=len(pool.flavors)
        )
        status = residency_status(datasets, verdicts)
        self._masks[id(datasets)] = (datasets, mask, status)
        return mask, status

    @_locked
    def confirm_starts(
        self, workload: Workload, jobs: np.ndarray, flavors: np.ndarray, now: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ok, delay seconds, one-off cost USD) per start, decided in order."""
        pool = self.pool
        if pool is None:
            raise ValueError("ResidencyCheck needs the pool to confirm starts")
        n = len(jobs)
        ok = np.ones(n, dtype=bool)
        delay, cost = np.zeros(n), np.zeros(n)
        for i in range(n):
            j, f = int(jobs[i]), int(flavors[i])
            ds = workload.profiles[int(workload.data_profile[j])]
            flavor = pool.flavors[f]
            if not ds:
                self._record(now, j, flavor.name, NO_DATASETS)
                continue
            v = self.verdict(ds, flavor.region, pool)
            if not v.allowed:
                ok[i] = False
                continue
            counted = tuple(
                (*key, name, persons)
                for key, name, persons in v.exports
                if self.counters.add(key, name, persons)
            )
            if counted:
                self._changed(counters={(h, o, c) for h, o, c, *_ in counted})
            gb = usd = 0.0
            if self.transfers and self._staged.get(j) != flavor.region:
                t = transfer_for(ds, flavor.region, pool, self.regions)
                delay[i], gb, usd = t.seconds, t.gb, t.egress_usd
                cost[i] = usd
                self._staged[j] = flavor.region
            d = Decision(ALLOWED, v.consulted, v.allowed_by, v.approvals, v.reason)
            self._record(now, j, flavor.name, d, gb, usd, float(delay[i]), counted)
        return ok, delay, cost

    @_locked
    def on_reject(self, job: int, status: Status, now: float) -> None:
        rules = tuple(status.source.removeprefix("residency:").split(",")) if status.source else ()
        consulted = rules if status.source.startswith("residency:") else ()
        self._record(
            now, job, "", Decision(REJECTED, consulted, (status.source,), (), status.reason)
        )

    @_locked
    def policy_extras(self, pool: Pool, workload: Workload) -> dict[str, np.ndarray]:
        """What moving data and running in each region costs, for cost-aware policies:
        ``profile_transfer_s`` / ``profile_transfer_usd`` (P, F) and
        ``flavor_extra_cost_per_hour`` (F,): energy + carbon price per accelerator-hour."""
        key = (id(workload), len(workload.profiles))
        if key != self._extras_for:
            sec, _gb, usd = profile_transfer_matrices(workload.profiles, pool, self.regions)
            self._extras = {
                "profile_transfer_s": sec,
                "profile_transfer_usd": usd,
                "flavor_extra_cost_per_hour": flavor_extra_cost_per_hour(
                    pool, self.carbon_usd_per_t
                ),
            }
            self._extras_for = key
        return self._extras

    def _record(
        self,
        now: float,
        job: int,
        flavor: str,
        d: Decision,
        gb: float = 0.0,
        usd: float = 0.0,
        delay: float = 0.0,
        exports: tuple = (),
    ) -> None:
        self.audit.add(now, job, flavor, d, gb, usd, delay, exports)
        if self.on_record is not None:
            self.on_record(self.audit.record(len(self.audit) - 1))
        if not self.keep_audit:
            self.audit.clear()

    @_locked
    def summary(self, workload: Workload) -> dict[str, Any]:
        """Figures for ``SimResult.extra``: audit counts per rule, transfers, counters."""
        counts = self.audit.counts_by_rule()
        a = self.audit
        return {
            "residency": {
                "rulebook": self.rulebook.source,
                "automotive_strict": self.rulebook.automotive_strict,
                "approvals": len(self.approvals),
                "audit_records": len(a),
                "starts_by_rule": counts["allowed"],
                "rejections_by_rule": counts["rejected"],
                "transfer_tb": float(np.sum(a.transfer_gb)) / 1000.0,
                "egress_usd": float(np.sum(a.egress_usd)),
                "transfer_delay_hours": float(np.sum(a.delay_s)) / 3600.0,
                "person_counters": [
                    {
                        "handler": h,
                        "origin": o,
                        "counter": c,
                        "year": y,
                        "datasets": d,
                        "persons": p,
                    }
                    for h, o, c, y, d, p in self.counters.rows()
                ],
            }
        }
