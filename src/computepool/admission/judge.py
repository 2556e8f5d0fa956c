"""Pure residency judgements: may this data be processed in that jurisdiction, and why.

``judge_dataset`` answers for one dataset and one destination jurisdiction; ``judge_profile``
for a job's datasets (its data profile) and one region, counting the storage leg (a dataset
stored outside its origin was exported to get there) and the processing leg (a remote read is
a transfer). Both take the approvals on record, the person counters and ``now``: the answer is
time-dependent, never cached here.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def judge_dataset(
    ds: Dataset,
    dest: str,
    rulebook: Rulebook,
    state: State,
    pending: Mapping[CounterKey, Mapping[str, int]] | None = None,
) -> Verdict:
    """May ``ds`` be processed in jurisdiction ``dest`` now? ``pending`` adds persons other
    datasets of the same placement would export (so two datasets cannot each fit a threshold
    that they break together)."""
    cls, rule = effective_class(ds, rulebook)
    if rule is None:
        fb = rulebook.unmatched
        ok = _in(dest, fb.to, ds.origin)
        why = f"{fb.id}: no rule covers {cls!r} from {ds.origin or '?'}; {fb.basis}"
        return Verdict(ok, fb.id, f"{fb.id}/to" if ok else "", (), (), why)
    exported = dest != ds.origin
    kind = _counter_kind(rule)
    key: CounterKey | None = None
    add = 0
    if exported and kind is not None:
        key = (ds.handler, ds.origin, kind, state.timebase.year(state.now))
        mine = (pending or {}).get(key, {})
        counted = state.counters.has(key, ds.name) or ds.name in mine
        add = 0 if counted else int(ds.persons or 0)
    missing: list[str] = []
    for g, grant in enumerate(rule.allow):
        if not _in(dest, grant.to, ds.origin):
            continue
        if grant.relaxed_only and rulebook.automotive_strict:
            missing.append("not under the strict automotive reading")
            continue
        if grant.persons_below is not None and exported:
            if ds.persons is None:
                missing.append("person count unknown")
                continue
            assert key is not None
            total = state.counters.used(key) + sum((pending or {}).get(key, {}).values()) + add
            if total >= grant.persons_below:
                missing.append(f"{total:,} persons this year >= {grant.persons_below:,}")
                continue
        used: list[str] = []
        for k in grant.requires:
            a = state.approvals.find(k, state.now, ds.handler, ds.origin, cls, dest, ds.name)
            if a is None:
                break
            used.append(a.id)
        else:
            exports: tuple[Export, ...] = ((key, ds.name, add),) if key is not None else ()
            why = f"{rule.id} allows {cls} from {ds.origin} in {dest}"
            return Verdict(True, rule.id, f"{rule.id}/allow[{g}]", tuple(used), exports, why)
        missing.append("needs " + " + ".join(grant.requires))
    detail = "; ".join(dict.fromkeys(missing)) if missing else "destination not listed"
    why = f"{rule.id} ({rule.title or cls}) forbids {cls} from {ds.origin} in {dest}: {detail}"
    return Verdict(False, rule.id, "", (), (), why)


def judge_profile(
    datasets: tuple[Dataset, ...],
    region: str,
    jurisdiction_of: Mapping[str, str],
    rulebook: Rulebook,
    state: State,
    memo: dict[Dataset, dict[str, Verdict]] | None = None,
) -> ProfileVerdict:
    """May a job reading ``datasets`` run in ``region`` now? The answer depends on the region
    only through its jurisdiction. ``memo`` caches single-dataset verdicts for this ``state``
    (used only where no other dataset of the job moved a person counter first)."""
    if not datasets:
        return ALLOW_EMPTY
    dest = jurisdiction_of.get(region, "")
    pending: dict[CounterKey, dict[str, int]] = {}
    consulted, allowed_by, approvals, exports, reasons = [], [], [], [], []
    for ds in datasets:
        legs = [dest]
        if ds.stored_in:
            stored = jurisdiction_of.get(ds.stored_in)
            if stored is None:
                _, rule = effective_class(ds, rulebook)
                rid = rule.id if rule is not None else rulebook.unmatched.id
                why = f"dataset {ds.name!r} is stored in unknown region {ds.stored_in!r}"
                return ProfileVerdict(False, (rid,), (rid,), (), (), why, rid)
            if stored != dest:
                legs.insert(0, stored)
        for i, leg in enumerate(legs):
            if memo is not None and not pending:
                mine = memo.get(ds)
                if mine is None:
                    mine = memo[ds] = {}
                v = mine.get(leg)
                if v is None:
                    v = mine[leg] = judge_dataset(ds, leg, rulebook, state)
            else:
                v = judge_dataset(ds, leg, rulebook, state, pending)
            if not v.allowed:
                where = f"stored in {ds.stored_in}" if i < len(legs) - 1 else f"processed in {dest}"
                why = f"dataset {ds.name!r} {where}: {v.reason}"
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
