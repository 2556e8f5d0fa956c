"""What the gateway tells the live serving controller about each service, and back.

The gateway (its activator, ``server/activator.py``) and the controller's round run in
different threads; they meet here, under one lock:

* requests in flight and the last use of each service (``begin`` / ``end``): the controller
  scales an idle service to zero and evicts the least recently used idle model from a shared
  device (Knative's activator reports concurrency to its autoscaler the same way);
* requests *held* for a service with no replica ready (``hold`` / ``unhold``): a bounded
  queue per service and a bounded share of it per tenant; while any is held the controller
  keeps (or starts) a replica;
* cold starts: the time from the first held request to the first ready replica (``ready``),
  counted and kept for ``GET /services`` and the gateway's metrics.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

#: Cold-start durations kept per service (the newest).
KEEP = 256


@dataclass(frozen=True)
class ActivatorBounds:
    """How a service with no replica ready holds requests (``scale_to_zero:`` of a services
    file): the idle window after which it goes to zero, at most ``queue`` requests held (a
    tenant at most half of them, at least one), each at most ``max_wait_s``."""

    idle_s: float = 60.0
    queue: int = 32
    max_wait_s: float = 60.0

    @property
    def per_tenant(self) -> int:
        return max(1, math.ceil(self.queue / 2))


@dataclass
class ServiceActivity:
    inflight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    held: int = 0
    held_by: dict[int, int] = field(default_factory=dict)
    #: monotonic time of the first request held since the service had no replica ready.
    wake_at: float | None = None
    cold_starts: int = 0
    cold_start_s: deque = field(default_factory=lambda: deque(maxlen=KEEP))
    scaled_to_zero: int = 0
    evictions: int = 0


class Activity:
    """Per service: in flight, last use, held requests, cold starts (thread-safe)."""

    def __init__(self, names: list[str]) -> None:
        self._lock = threading.Lock()
        self._s = {n: ServiceActivity() for n in names}

    def _of(self, name: str) -> ServiceActivity:
        return self._s[name]

    # ---- the gateway's side ---------------------------------------------------------
    def begin(self, name: str) -> None:
        with self._lock:
            a = self._of(name)
            a.inflight += 1
            a.last_used = time.monotonic()

    def end(self, name: str) -> None:
        with self._lock:
            a = self._of(name)
            a.inflight = max(a.inflight - 1, 0)
            a.last_used = time.monotonic()

    def hold(self, name: str, tenant: int, bounds: ActivatorBounds) -> str:
        """Hold one request: "" when held, else why not (``queue`` full, ``tenant``'s share
        of it full)."""
        with self._lock:
            a = self._of(name)
            if a.held >= bounds.queue:
                return "queue"
            if a.held_by.get(tenant, 0) >= bounds.per_tenant:
                return "tenant"
            a.held += 1
            a.held_by[tenant] = a.held_by.get(tenant, 0) + 1
            a.last_used = time.monotonic()
            if a.wake_at is None:
                a.wake_at = a.last_used
            return ""

    def unhold(self, name: str, tenant: int) -> None:
        with self._lock:
            a = self._of(name)
            a.held = max(a.held - 1, 0)
            left = a.held_by.get(tenant, 0) - 1
            if left > 0:
                a.held_by[tenant] = left
            else:
                a.held_by.pop(tenant, None)
            if a.held == 0 and a.wake_at is not None:
                # every held request gave up: the next one starts a new wait
                a.wake_at = None

    def ready(self, name: str) -> float | None:
        """A replica answered after requests were held: the cold start's seconds (only to
        the first caller; None to the others or when none was held)."""
        with self._lock:
            a = self._of(name)
            if a.wake_at is None:
                return None
            s = time.monotonic() - a.wake_at
            a.wake_at = None
            a.cold_starts += 1
            a.cold_start_s.append(s)
            return s

    # ---- the controller's side ------------------------------------------------------
    def snapshot(self, name: str) -> ServiceActivity:
        with self._lock:
            a = self._of(name)
            return ServiceActivity(
                a.inflight, a.last_used, a.held, dict(a.held_by), a.wake_at, a.cold_starts,
                deque(a.cold_start_s, maxlen=KEEP), a.scaled_to_zero, a.evictions,
            )  # fmt: skip

    def cold(self, name: str) -> tuple[int, float | None]:
        """(cold starts so far, the latest's seconds) — cheap, for every gateway request."""
        with self._lock:
            a = self._of(name)
            return a.cold_starts, (a.cold_start_s[-1] if a.cold_start_s else None)

    def idle_s(self, name: str, now: float | None = None) -> float:
        """Seconds since its last request ended (0 while one is in flight or held)."""
        with self._lock:
            a = self._of(name)
            if a.inflight or a.held:
                return 0.0
            return (time.monotonic() if now is None else now) - a.last_used

    def busy(self, name: str) -> bool:
        with self._lock:
            a = self._of(name)
            return bool(a.inflight or a.held)

    def waiting(self, name: str) -> int:
        with self._lock:
            return self._of(name).held

    def count(self, name: str, what: str) -> None:
        """``scaled_to_zero`` or ``evictions`` += 1."""
        with self._lock:
            a = self._of(name)
            setattr(a, what, getattr(a, what) + 1)
