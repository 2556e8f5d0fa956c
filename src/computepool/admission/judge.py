"""Pure residency judgements: may this data be processed in that jurisdiction, and why.

``judge_dataset`` answers for one dataset and one destination jurisdiction; ``judge_profile``
for a job's datasets (its data profile) and one region, counting the storage leg (a dataset
stored outside its origin was exported to get there) and the processing leg (a remote read is
a transfer). Both take the approvals on record, the person counters and ``now``: the answer is
time-dependent, never cached here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from computepool.admission.approvals import ApprovalBook, PersonCounters, TimeBase
from computepool.admission.rulebook import ANY, ORIGIN, Rule, Rulebook
from computepool.model.job import Dataset

CounterKey = tuple[str, str, str, int]
#: (counter key, dataset name, persons) that a placement would add to the person counters.
Export = tuple[CounterKey, str, int]


@dataclass(frozen=True)
class State:
    """What a judgement depends on besides the data and the rules."""

    approvals: ApprovalBook
    counters: PersonCounters
    now: float
    timebase: TimeBase


@dataclass(frozen=True)
class Verdict:
    """One dataset in one jurisdiction."""

    allowed: bool
    rule: str
    #: "RULE/allow[i]" of the grant that allowed it; "" when refused.
    grant: str
    approvals: tuple[str, ...]
    exports: tuple[Export, ...]
    reason: str


@dataclass(frozen=True)
class ProfileVerdict:
    """All of a job's datasets in one region."""

    allowed: bool
    #: Governing rule of each dataset (the rules consulted), in dataset order.
    consulted: tuple[str, ...]
    #: The grant that allowed each dataset (``allowed``) or the refusing rule (first only).
    allowed_by: tuple[str, ...]
    approvals: tuple[str, ...]
    exports: tuple[Export, ...]
    reason: str
    #: Rule that refused (empty when allowed).
    forbidden_by: str = ""


ALLOW_EMPTY = ProfileVerdict(True, (), (), (), (), "no datasets declared")


def effective_class(ds: Dataset, rulebook: Rulebook) -> tuple[str, Rule | None]:
    """Data class after anonymisation, and the rule governing it."""
    cls = ds.data_class
    rule = rulebook.match(cls, ds.origin, ds.handler)
    for _ in range(8):
        if not (ds.anonymised and rule is not None and rule.when_anonymised):
            break
        cls = rule.when_anonymised
        rule = rulebook.match(cls, ds.origin, ds.handler)
    return cls, rule


def _counter_kind(rule: Rule) -> str | None:
    return next((g.counter for g in rule.allow if g.counter is not None), None)


def _in(dest: str, to: tuple[str, ...], origin: str) -> bool:
    return ANY in to or dest in to or (ORIGIN in to and dest == origin)


#: Grant states before person counts: skipped under the strict reading, approvals on
#: record, approvals missing.
RELAXED, READY, MISSING = 0, 1, 2


@dataclass(frozen=True)
class GrantScan:
    """What a rule grants data of one (class, origin, handler, name) toward one jurisdiction,
    before person counts: each grant whose ``to`` covers it, in order, as (grant index, state,
    ``persons_below``, approvals used). It depends on the approvals on record now but not on
    the counters, so it is shared by every dataset with the same key."""

    rule: Rule | None
    cls: str
    steps: tuple[tuple[int, int, int | None, tuple[str, ...]], ...]
    #: The unmatched fallback allows it (``rule is None`` only).
    fallback_ok: bool = False
    #: The person counter the rule counts exports on (None: it counts none).
    kind: str | None = None

    def name_free(self, origin: str, dest: str) -> bool:
        """Its verdict is the same for every dataset of the key (no person counts or
        dataset names enter it): no counter, or no export."""
        return self.kind is None or dest == origin


def scan_grants(ds: Dataset, dest: str, rulebook: Rulebook, state: State) -> GrantScan:
    cls, rule = effective_class(ds, rulebook)
    if rule is None:
        return GrantScan(None, cls, (), _in(dest, rulebook.unmatched.to, ds.origin))
    steps = []
    for g, grant in enumerate(rule.allow):
        if not _in(dest, grant.to, ds.origin):
            continue
        if grant.relaxed_only and rulebook.automotive_strict:
            steps.append((g, RELAXED, grant.persons_below, ()))
            continue
        used: list[str] = []
        for k in grant.requires:
            a = state.approvals.find(k, state.now, ds.handler, ds.origin, cls, dest, ds.name)
            if a is None:
                break
            used.append(a.id)
        ok = len(used) == len(grant.requires)
        steps.append((g, READY if ok else MISSING, grant.persons_below, tuple(used)))
    return GrantScan(rule, cls, tuple(steps), kind=_counter_kind(rule))


def scan_key(ds: Dataset, dest: str, named: frozenset[str]) -> tuple:
    """Datasets with equal keys share a ``GrantScan`` (the name counts only where an
    approval on record names datasets)."""
    return (ds.data_class, ds.origin, ds.handler, ds.anonymised, dest,
            ds.name if ds.name in named else None)  # fmt: skip


def judge_dataset(
    ds: Dataset,
    dest: str,
    rulebook: Rulebook,
    state: State,
    pending: Mapping[CounterKey, Mapping[str, int]] | None = None,
    scan: GrantScan | None = None,
) -> Verdict:
    """May ``ds`` be processed in jurisdiction ``dest`` now? ``pending`` adds persons other
    datasets of the same placement would export (so two datasets cannot each fit a threshold
    that they break together). ``scan``: ``scan_grants(ds, dest, ...)`` if already known."""
    sc = scan if scan is not None else scan_grants(ds, dest, rulebook, state)
    rule, cls = sc.rule, sc.cls
    if rule is None:
        fb = rulebook.unmatched
        why = f"{fb.id}: no rule covers {cls!r} from {ds.origin or '?'}; {fb.basis}"
        return Verdict(sc.fallback_ok, fb.id, f"{fb.id}/to" if sc.fallback_ok else "", (), (), why)
    exported = dest != ds.origin
    kind = sc.kind
    key: CounterKey | None = None
    add = 0
    if exported and kind is not None:
        key = (ds.handler, ds.origin, kind, state.timebase.year(state.now))
        mine = (pending or {}).get(key, {})
        counted = state.counters.has(key, ds.name) or ds.name in mine
        add = 0 if counted else int(ds.persons or 0)
    missing: list[str] = []
    for g, st, persons_below, used in sc.steps:
        if st == RELAXED:
            missing.append("not under the strict automotive reading")
            continue
        if persons_below is not None and exported:
            if ds.persons is None:
                missing.append("person count unknown")
                continue
            assert key is not None
            total = state.counters.used(key) + sum((pending or {}).get(key, {}).values()) + add
            if total >= persons_below:
                missing.append(f"{total:,} persons this year >= {persons_below:,}")
                continue
        if st == MISSING:
            missing.append("needs " + " + ".join(rule.allow[g].requires))
            continue
        exports: tuple[Export, ...] = ((key, ds.name, add),) if key is not None else ()
        why = f"{rule.id} allows {cls} from {ds.origin} in {dest}"
        return Verdict(True, rule.id, f"{rule.id}/allow[{g}]", used, exports, why)
    detail = "; ".join(dict.fromkeys(missing)) if missing else "destination not listed"
    why = f"{rule.id} ({rule.title or cls}) forbids {cls} from {ds.origin} in {dest}: {detail}"
    return Verdict(False, rule.id, "", (), (), why)


def judge_profile(
    datasets: tuple[Dataset, ...],
    region: str,
    jurisdiction_of: Mapping[str, str],
    rulebook: Rulebook,
    state: State,
    judged: Callable[[Dataset, str], Verdict] | None = None,
    scan: Callable[[Dataset, str], GrantScan] | None = None,
) -> ProfileVerdict:
    """May a job reading ``datasets`` run in ``region`` now? The answer depends on the region
    only through its jurisdiction. ``judged(ds, leg)`` gives cached single-dataset verdicts
    for this ``state`` (used only where no other dataset of the job moved a person counter
    first); ``scan(ds, leg)`` cached ``GrantScan``s."""
    if not datasets:
        return ALLOW_EMPTY

    dest = jurisdiction_of.get(region, "")
    pending: dict[CounterKey, dict[str, int]] = {}
    consulted, allowed_by, approvals, exports, reasons = [], [], [], [], []
    for ds in datasets:
        legs = _legs(ds, dest, jurisdiction_of)
        if legs is None:
            rid, why = _unknown_store(ds, rulebook)
            return ProfileVerdict(False, (rid,), (rid,), (), (), why, rid)
        for i, leg in enumerate(legs):
            if judged is not None and not pending:
                v = judged(ds, leg)
            else:
                sc = scan(ds, leg) if scan is not None else None
                v = judge_dataset(ds, leg, rulebook, state, pending, sc)
            if not v.allowed:
                why = _refused(ds, i < len(legs) - 1, dest, v)
                return ProfileVerdict(
                    False, (*consulted, v.rule), (v.rule,), (), (), why, forbidden_by=v.rule
                )
            for key, name, persons in v.exports:
                pending.setdefault(key, {})[name] = persons
            approvals += v.approvals
            exports += v.exports
        consulted.append(v.rule)
        allowed_by.append(v.grant)
        reasons.append(f"{ds.name!r}: {v.reason}")
    why = "; ".join(reasons)
    return ProfileVerdict(
        True,
        tuple(consulted),
        tuple(allowed_by),
        tuple(dict.fromkeys(approvals)),
        tuple(dict.fromkeys(exports)),
        why,
    )


def _legs(ds: Dataset, dest: str, jurisdiction_of: Mapping[str, str]) -> list[str] | None:
    """Jurisdictions ``ds`` must be allowed in to be processed in ``dest``: where it is stored
    (when elsewhere) and ``dest``; None when it is stored in an unknown region."""
    if not ds.stored_in:
        return [dest]
    stored = jurisdiction_of.get(ds.stored_in)
    if stored is None:
        return None
    return [stored, dest] if stored != dest else [dest]


def _unknown_store(ds: Dataset, rulebook: Rulebook) -> tuple[str, str]:
    _, rule = effective_class(ds, rulebook)
    rid = rule.id if rule is not None else rulebook.unmatched.id
    return rid, f"dataset {ds.name!r} is stored in unknown region {ds.stored_in!r}"


def _refused(ds: Dataset, storage_leg: bool, dest: str, v: Verdict) -> str:
    where = f"stored in {ds.stored_in}" if storage_leg else f"processed in {dest}"
    return f"dataset {ds.name!r} {where}: {v.reason}"


def first_refusal(
    datasets: tuple[Dataset, ...],
    dest: str,
    jurisdiction_of: Mapping[str, str],
    rulebook: Rulebook,
    judged: Callable[[Dataset, str], Verdict],
) -> tuple[str, str] | None:
    """(rule, reason) of ``judge_profile``'s refusal in jurisdiction ``dest``, or None when
    it allows; without building the verdict. Exact when no two of the datasets count on one
    person counter (``residency_masks.shares_counter``)."""
    for ds in datasets:
        legs = _legs(ds, dest, jurisdiction_of)
        if legs is None:
            return _unknown_store(ds, rulebook)
        for i, leg in enumerate(legs):
            v = judged(ds, leg)
            if not v.allowed:
                return v.rule, _refused(ds, i < len(legs) - 1, dest, v)
    return None
