"""Approvals on record (with expiry), person counters per calendar year, and scheduler time.

An ``Approval`` is a record an admin adds: a standard contract filed, a security assessment
passed, consent records, ... scoped to a handler, origin, data class, destinations and
datasets (``*``/empty = any), valid over ``[valid_from, expires)`` in scheduler seconds.
``TimeBase`` maps scheduler seconds to calendar dates (simulated time 0 is ``epoch``; the live
pool uses the Unix epoch), which the per-calendar-year person counters need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from computepool.admission.rulebook import ANY, Rulebook, RulebookError, field_path
from computepool.catalog import yaml_lines

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeBase:
    """Scheduler seconds <-> calendar time: ``t`` seconds after ``epoch`` (UTC)."""

    epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def to_datetime(self, t: float) -> datetime:
        return datetime.fromtimestamp(self.epoch.timestamp() + t, tz=UTC)

    def seconds(self, when: datetime | date | str) -> float:
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        if not isinstance(when, datetime):
            when = datetime(when.year, when.month, when.day)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp() - self.epoch.timestamp()

    def year(self, t: float) -> int:
        return self.to_datetime(t).year if math.isfinite(t) else 9999

    def next_year_start(self, t: float) -> float:
        return self.seconds(datetime(self.year(t) + 1, 1, 1, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    kind: str
    handler: str = ANY
    origin: str = ANY
    data_class: str = ANY
    #: Destination jurisdictions this approval covers.
    to: tuple[str, ...] = (ANY,)
    #: Dataset names it covers; empty means every dataset in its scope.
    datasets: tuple[str, ...] = ()
    valid_from: float = -math.inf
    expires: float = math.inf
    note: str = ""

    def active(self, now: float) -> bool:
        return self.valid_from <= now < self.expires

    def covers(self, handler: str, origin: str, data_class: str, dest: str, dataset: str) -> bool:
        return (
            self.handler in (ANY, handler)
            and self.origin in (ANY, origin)
            and self.data_class in (ANY, data_class)
            and (ANY in self.to or dest in self.to)
            and (not self.datasets or dataset in self.datasets)
        )


@dataclass(frozen=True)
class ApprovalBook:
    """An immutable set of approvals; ``added``/``revoked`` return new books."""

    approvals: tuple[Approval, ...] = ()

    def __len__(self) -> int:
        return len(self.approvals)

    @cached_property
    def named(self) -> frozenset[str]:
        """Dataset names that some approval is limited to."""
        return frozenset(n for a in self.approvals for n in a.datasets)

    def changed_between(self, t0: float, t1: float) -> tuple[Approval, ...]:
        """Approvals that started or expired in ``(t0, t1]``."""
        return tuple(a for a in self.approvals if t0 < a.valid_from <= t1 or t0 < a.expires <= t1)

    def added(self, a: Approval) -> ApprovalBook:
        if any(x.id == a.id for x in self.approvals):
            raise ValueError(f"approval id {a.id!r} already exists")
        return ApprovalBook((*self.approvals, a))

    def revoked(self, approval_id: str, at: float) -> ApprovalBook:
        """The book with approval ``approval_id`` expiring at ``at`` (kept for the audit)."""
        if not any(x.id == approval_id for x in self.approvals):
            raise KeyError(f"no approval with id {approval_id!r}")
        return ApprovalBook(
            tuple(
                replace(x, expires=min(x.expires, at)) if x.id == approval_id else x
                for x in self.approvals
            )
        )

    def find(
        self,
        kind: str,
        now: float,
        handler: str,
        origin: str,
        data_class: str,
        dest: str,
        name: str,
    ) -> Approval | None:
        for a in self.approvals:
            if (
                a.kind == kind
                and a.active(now)
                and a.covers(handler, origin, data_class, dest, name)
            ):
                return a
        return None

    def next_change(self, now: float) -> float:
        """The first time after ``now`` at which an approval starts or expires."""
        times = [t for a in self.approvals for t in (a.valid_from, a.expires) if t > now]
        return min(times, default=math.inf)


@dataclass
class PersonCounters:
    """Distinct datasets (and their persons) exported per (handler, origin, counter, year).

    A dataset counts once per calendar year however many jobs read it; summing persons over
    datasets over-counts people present in several, which errs on the strict side.
    """

    counted: dict[tuple[str, str, str, int], dict[str, int]] = field(default_factory=dict)

    def used(self, key: tuple[str, str, str, int]) -> int:
        return sum(self.counted.get(key, {}).values())

    def has(self, key: tuple[str, str, str, int], dataset: str) -> bool:
        return dataset in self.counted.get(key, {})

    def add(self, key: tuple[str, str, str, int], dataset: str, persons: int) -> bool:
        """Record an export; True when the counter changed."""
        bucket = self.counted.setdefault(key, {})
        if dataset in bucket:
            return False
        bucket[dataset] = int(persons)
        return True

    def rows(self) -> list[tuple[str, str, str, int, int, int]]:
        """(handler, origin, counter, year, datasets, persons) per key, for reports."""
        return [(*k, len(v), sum(v.values())) for k, v in sorted(self.counted.items())]


# ---- YAML -----------------------------------------------------------------------------


class ApprovalRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    kind: str
    handler: str = ANY
    origin: str = ANY
    data_class: str = ANY
    to: tuple[str, ...] = (ANY,)
    datasets: tuple[str, ...] = ()
    valid_from: datetime | date | None = None
    expires: datetime | date | None = None
    note: str = ""


class ApprovalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvals: list[ApprovalRow] = []


def approval_from_row(row: ApprovalRow, timebase: TimeBase) -> Approval:
    return Approval(
        id=row.id,
        kind=row.kind,
        handler=row.handler,
        origin=row.origin,
        data_class=row.data_class,
        to=tuple(row.to),
        datasets=tuple(row.datasets),
        valid_from=-math.inf if row.valid_from is None else timebase.seconds(row.valid_from),
        expires=math.inf if row.expires is None else timebase.seconds(row.expires),
        note=row.note,
    )


def parse_approvals(
    doc: Any, rulebook: Rulebook, timebase: TimeBase, label: str = "<approvals>"
) -> ApprovalBook:
    """Approvals from a parsed YAML/JSON document ``{approvals: [...]}``; errors name fields."""
    if isinstance(doc, list):
        doc = {"approvals": doc}
    if not isinstance(doc, dict):
        raise RulebookError(label, [("(top level)", "expected a mapping with an 'approvals' list")])
    try:
        parsed = ApprovalsFile.model_validate(doc)
    except ValidationError as exc:
        raise RulebookError(
            label, [(field_path(e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    problems = []
    seen: set[str] = set()
    for i, row in enumerate(parsed.approvals):
        if row.kind not in rulebook.approval_kinds:
            known = ", ".join(sorted(rulebook.approval_kinds))
            problems.append(
                (f"approvals[{i}].kind", f"unknown approval kind {row.kind!r} (known: {known})")
            )
        if row.id in seen:
            problems.append((f"approvals[{i}].id", f"duplicate approval id {row.id!r}"))
        seen.add(row.id)
        if (
            row.valid_from is not None
            and row.expires is not None
            and timebase.seconds(row.expires) <= timebase.seconds(row.valid_from)
        ):
            problems.append((f"approvals[{i}].expires", "expires on or before valid_from"))
    if problems:
        raise RulebookError(label, problems)
    return ApprovalBook(tuple(approval_from_row(r, timebase) for r in parsed.approvals))


def load_approvals(path: str | Path, rulebook: Rulebook, timebase: TimeBase) -> ApprovalBook:
    p = Path(path)
    if not p.exists():
        raise RulebookError(str(p), [("(file)", "no such file")])
    try:
        doc = yaml_lines.read(p).data
    except yaml_lines.YamlSyntaxError as exc:
        raise RulebookError(
            str(p), [(f"line {exc.line}", f"not valid YAML: {exc.reason}")]
        ) from None
    return parse_approvals(doc, rulebook, timebase, str(p))


def approvals_of(items: Iterable[Approval]) -> ApprovalBook:
    return ApprovalBook(tuple(items))
