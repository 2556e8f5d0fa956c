"""What changed in the residency check's state, and which data profiles it can affect.

The Scheduler keeps one flavor mask per data profile. After an approval is added, revoked,
starts or expires, or a start moves a person counter, only profiles with a dataset that the
change can reach need a new mask: a dataset is reached by

- an approval whose kind one of its governing rule's grants requires and whose scope
  (handler, origin, data class, dataset names) covers it;
- a counter (handler, origin, kind) its governing rule counts on.

A new calendar year (counters reset) or a restore reaches everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from computepool.admission.approvals import Approval, ApprovalBook
from computepool.admission.judge import _counter_kind, effective_class
from computepool.admission.rulebook import ANY, Rule, Rulebook
from computepool.model.job import Dataset


@dataclass
class Changes:
    """Changes since the Scheduler last synced."""

    everything: bool = False
    approvals: set[Approval] = field(default_factory=set)
    #: (handler, origin, counter kind)
    counters: set[tuple[str, str, str]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.everything or bool(self.approvals) or bool(self.counters)


def approvals_diff(old: ApprovalBook, new: ApprovalBook) -> set[Approval]:
    """Approvals added, removed or changed between two books."""
    return set(old.approvals) ^ set(new.approvals)


def _needs(rule: Rule) -> frozenset[str]:
    return frozenset(k for g in rule.allow for k in g.requires)


def _reaches(a: Approval, ds: Dataset, cls: str, needs: frozenset[str]) -> bool:
    return (
        a.kind in needs
        and a.handler in (ANY, ds.handler)
        and a.origin in (ANY, ds.origin)
        and a.data_class in (ANY, cls)
        and (not a.datasets or ds.name in a.datasets)
    )


Deps = tuple[str, str | None, frozenset[str]]


def dependencies(rulebook: Rulebook) -> Callable[[Dataset], Deps | None]:
    """``deps(ds)``: (effective class, counter kind, approval kinds its rule's grants need),
    or None where no rule governs it; cached per (class, origin, handler, anonymised)."""
    cache: dict[tuple, Deps | None] = {}

    def deps(ds: Dataset) -> Deps | None:
        k = (ds.data_class, ds.origin, ds.handler, ds.anonymised)
        if k not in cache:
            cls, rule = effective_class(ds, rulebook)
            cache[k] = None if rule is None else (cls, _counter_kind(rule), _needs(rule))
        return cache[k]

    return deps


def dataset_reached(ds: Dataset, changes: Changes, deps: Callable[[Dataset], Deps | None]) -> bool:
    if changes.everything:
        return True
    d = deps(ds)
    if d is None:
        return False
    cls, kind, needs = d
    if kind is not None and (ds.handler, ds.origin, kind) in changes.counters:
        return True
    return any(_reaches(a, ds, cls, needs) for a in changes.approvals)


def affected(
    profiles: Sequence[tuple[Dataset, ...]],
    changes: Changes,
    deps: Callable[[Dataset], Deps | None],
) -> np.ndarray:
    """(P,) bool: the profiles whose legal flavors ``changes`` may have changed."""
    if changes.everything:
        return np.ones(len(profiles), dtype=bool)
    if not changes:
        return np.zeros(len(profiles), dtype=bool)
    seen: dict[int, bool] = {}  # by id: the datasets live in ``profiles`` meanwhile

    def hit(ds: Dataset) -> bool:
        v = seen.get(id(ds))
        if v is None:
            v = seen[id(ds)] = dataset_reached(ds, changes, deps)
        return v

    return np.fromiter(
        (any(hit(ds) for ds in p) for p in profiles), dtype=bool, count=len(profiles)
    )
