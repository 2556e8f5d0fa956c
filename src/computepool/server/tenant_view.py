"""Tenants, quotas and budgets as the live pool last read them from the store, and the hand-over
of a change to the thread that runs the scheduler's rounds.

The store is read from several threads: the scheduler's own periodic refresh, an admin's
tenant change (``POST /v1/tenants``, so a quota raise counts at once), a standby waiting for
the lease. Two rules keep a change from being lost:

- a read and its comparison with what was seen last are one step (a lock): a refresh that
  read the store before a change was committed can no longer publish its older rows after a
  refresh that read them after it;
- only the round's thread applies a change to the quota gate and the scheduler (``take``):
  the gate caches a table built from its tenants during a round, and an update landing while
  a round was building it left the old table cached for good (a raised quota never counted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: What one read of the store gives: tenants by name, and the tenants over their budget.
Tenants = tuple[Mapping[str, Any], frozenset[str]]


@dataclass
class TenantView:
    #: Seconds a read is used before the next periodic one (a forced one reads at once).
    every_s: float = 2.0
    #: Tenants over their budget as last read (the dashboard shows them).
    over_budget: frozenset[str] = frozenset()
    _seen: Mapping[str, Any] = field(default_factory=dict)
    _at: float = -1e18
    _new: Tenants | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refresh(self, read: Callable[[], Tenants], now: float, force: bool = False) -> bool:
        """Read the store through ``read`` if due (or ``force``); True when what it read
        differs from what was seen last (the change then waits for ``take``)."""
        with self._lock:
            if not force and now - self._at < self.every_s:
                return False
            self._at = now
            tenants, over = read()
            if (tenants, over) == (self._seen, self.over_budget):
                return False
            self._seen, self.over_budget = tenants, over
            self._new = (tenants, over)
            return True

    def take(self) -> Tenants | None:
        """The latest change not yet applied (once), or None."""
        with self._lock:
            new, self._new = self._new, None
            return new
