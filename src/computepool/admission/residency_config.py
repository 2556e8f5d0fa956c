"""Building a ``ResidencyCheck`` from options (CLI, scenario files, the live server).

``rulebook``: ``auto`` (the shipped rules when the pool spans several jurisdictions, none
otherwise), ``default`` (the shipped rules), ``off``, or the path of an operator's rulebook.
Simulated time 0 is ``start`` (a calendar date; approvals and the per-year person counters are
dated); the live pool passes ``live=True`` (its clock is Unix time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from computepool.admission.approvals import UNIX_EPOCH, ApprovalBook, TimeBase, load_approvals
from computepool.admission.residency import ResidencyCheck
from computepool.admission.rulebook import load_rulebook
from computepool.model.pool import Pool

AUTO, OFF = "auto", "off"
DEFAULT_START = "2026-01-01"


@dataclass(frozen=True)
class ResidencyOptions:
    rulebook: str = AUTO
    approvals: str | Path | None = None
    start: str = DEFAULT_START
    automotive_strict: bool | None = None
    carbon_usd_per_t: float = 0.0
    transfers: bool = True
    live: bool = False


def spans_jurisdictions(pool: Pool) -> bool:
    return len({pool.regions[f.region].jurisdiction for f in pool.flavors}) > 1


def timebase_for(start: str, live: bool = False) -> TimeBase:
    if live:
        return TimeBase(UNIX_EPOCH)
    try:
        when = datetime.fromisoformat(start)
    except ValueError:
        raise ValueError(f"--sim-start {start!r}: expected a date like 2026-01-01") from None
    return TimeBase(when if when.tzinfo else when.replace(tzinfo=UTC))


def make_residency_check(
    pool: Pool,
    options: ResidencyOptions = ResidencyOptions(),
    on_record: Callable[[dict[str, Any]], None] | None = None,
    now: float = 0.0,
) -> ResidencyCheck | None:
    """The check ``options`` ask for on ``pool``, or None (``off``, or ``auto`` on a pool in one
    jurisdiction). Errors (bad rulebook/approvals file, bad date) raise ``ValueError``."""
    if options.rulebook == OFF:
        return None
    if options.rulebook == AUTO and not spans_jurisdictions(pool):
        return None
    rb = load_rulebook(None if options.rulebook in (AUTO, "default") else options.rulebook)
    if options.automotive_strict is not None:
        rb = rb.with_settings(automotive_strict=options.automotive_strict)
    tb = timebase_for(options.start, options.live)
    book = (
        load_approvals(options.approvals, rb, tb)
        if options.approvals is not None
        else ApprovalBook()
    )
    return ResidencyCheck(
        rb,
        pool=pool,
        approvals=book,
        timebase=tb,
        transfers=options.transfers,
        carbon_usd_per_t=options.carbon_usd_per_t,
        now=now,
        on_record=on_record,
        keep_audit=not options.live,
    )
