"""Legal regions of many data profiles at once, as arrays.

``judge_profile`` answers one profile in one region with every reason; a scheduling round that
admits thousands of arrivals (or rechecks its queue after an approval changed) only needs the
yes/no of each (profile, region). A dataset's answer in a jurisdiction depends on its
(class, origin, handler) through the rulebook and the approvals — one ``GrantScan`` per key and
jurisdiction, shared by every dataset with that key — and on person counts only through one
comparison (persons counted this year + its own < the largest threshold a ready grant sets).
So: scans per key (a few dozen), a vector per dataset, and a profile's regions are the AND of
its datasets' (destination leg, and storage leg where the data sits elsewhere).

A profile with two datasets on one person counter is judged by ``judge_profile`` instead (their
persons add up before either may use a threshold grant); ``needs_full`` marks them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from computepool.admission.judge import (
    READY,
    GrantScan,
    State,
    _counter_kind,
    effective_class,
)
from computepool.admission.rulebook import Rulebook
from computepool.model.job import Dataset

ScanOf = Callable[[Dataset, str], GrantScan]


def _scan_limits(sc: GrantScan, origin: str, dest: str) -> tuple[bool, float]:
    """(allowed whatever the persons, largest threshold of a ready grant) for one scan."""
    if sc.rule is None:
        return sc.fallback_ok, -np.inf
    exported = dest != origin
    free, limit = False, -np.inf
    for _g, st, persons_below, _used in sc.steps:
        if st != READY:
            continue
        if persons_below is None or not exported:
            free = True
        else:
            limit = max(limit, float(persons_below))
    return free, limit


def counter_kinds(rulebook: Rulebook) -> Callable[[Dataset], str | None]:
    """``kind(ds)``: the person counter a dataset's governing rule uses (cached per key)."""
    cache: dict[tuple, str | None] = {}

    def kind(ds: Dataset) -> str | None:
        k = (ds.data_class, ds.origin, ds.handler, ds.anonymised)
        if k not in cache:
            _, rule = effective_class(ds, rulebook)
            cache[k] = _counter_kind(rule) if rule is not None else None
        return cache[k]

    return kind


def shares_counter(datasets: tuple[Dataset, ...], kind_of: Callable[[Dataset], str | None]) -> bool:
    """Two of the datasets count on one person counter (handler, origin, kind)."""
    if len(datasets) < 2:
        return False
    keys = [(x.handler, x.origin, k) for x in datasets if (k := kind_of(x)) is not None]
    return len(keys) != len(set(keys))


def dataset_allowed(
    datasets: Sequence[Dataset],
    jurisdictions: Sequence[str],
    state: State,
    scan_of: ScanOf,
    kind_of: Callable[[Dataset], str | None],
) -> np.ndarray:
    """(D, J) bool: may dataset d be processed in jurisdiction j now (one leg)?"""
    D, J = len(datasets), len(jurisdictions)
    free = np.zeros((D, J), dtype=bool)
    limit = np.full((D, J), -np.inf)
    counted = np.full(D, np.nan)  # persons this dataset would add to its counter
    used = np.zeros(D)  # persons already on its counter this year
    per_key: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    named = state.approvals.named
    year = state.timebase.year(state.now)
    for d, ds in enumerate(datasets):
        k = (ds.data_class, ds.origin, ds.handler, ds.anonymised, ds.name in named and ds.name)
        hit = per_key.get(k)
        if hit is None:
            f = np.zeros(J, dtype=bool)
            lim = np.full(J, -np.inf)
            for j, dest in enumerate(jurisdictions):
                f[j], lim[j] = _scan_limits(scan_of(ds, dest), ds.origin, dest)
            hit = per_key[k] = (f, lim, bool(np.isfinite(lim).any()))
        free[d], limit[d], thresholds = hit
        kind = kind_of(ds) if thresholds else None
        if kind is not None and ds.persons is not None:
            key = (ds.handler, ds.origin, kind, year)
            used[d] = state.counters.used(key)
            counted[d] = 0 if state.counters.has(key, ds.name) else ds.persons
    with np.errstate(invalid="ignore"):
        return free | ((used + counted)[:, None] < limit)


def profile_region_masks(
    profiles: Sequence[tuple[Dataset, ...]],
    regions: Sequence[str],
    jurisdiction_of: Mapping[str, str],
    state: State,
    scan_of: ScanOf,
    kind_of: Callable[[Dataset], str | None],
) -> tuple[np.ndarray, np.ndarray]:
    """((P, R) legal regions of each profile, (P,) profiles ``judge_profile`` must answer)."""
    P, R = len(profiles), len(regions)
    jurs = sorted({jurisdiction_of.get(r, "") for r in regions})
    jidx = {j: i for i, j in enumerate(jurs)}
    # datasets by object (profiles share them; equal copies are merely judged twice)
    uid: dict[int, int] = {}
    dsets: list[Dataset] = []
    ent_p: list[int] = []
    ent_d: list[int] = []
    needs_full = np.zeros(P, dtype=bool)
    for p, datasets in enumerate(profiles):
        for ds in datasets:
            d = uid.get(id(ds))
            if d is None:
                d = uid[id(ds)] = len(dsets)
                dsets.append(ds)
            ent_p.append(p)
            ent_d.append(d)
        if len(datasets) > 1:
            needs_full[p] = shares_counter(datasets, kind_of)
    # storage legs: the stored region's jurisdiction joins the columns (unknown region: -2)
    stored = np.full(len(dsets), -1, dtype=np.int64)
    for d, ds in enumerate(dsets):
        if ds.stored_in:
            j = jurisdiction_of.get(ds.stored_in)
            if j is None:
                stored[d] = -2
            else:
                if j not in jidx:
                    jidx[j] = len(jurs)
                    jurs.append(j)
                stored[d] = jidx[j]
    ok = dataset_allowed(dsets, jurs, state, scan_of, kind_of)
    col = np.array([jidx[jurisdiction_of.get(r, "")] for r in regions], dtype=np.int64)
    dest_ok = ok[:, col]  # (D, R)
    has_store = stored >= 0
    store_ok = np.ones(len(dsets), dtype=bool)
    store_ok[has_store] = ok[np.nonzero(has_store)[0], stored[has_store]]
    same = stored[:, None] == col[None, :]
    region_ok = dest_ok & (~has_store[:, None] | same | store_ok[:, None])
    region_ok[stored == -2] = False
    bad = np.zeros((P, R))
    if ent_p:
        ep, ed = np.asarray(ent_p), np.asarray(ent_d)
        for r in range(R):
            bad[:, r] = np.bincount(ep, weights=~region_ok[ed, r], minlength=P)
    return bad == 0, needs_full
