"""Who is looking (a tenant or the admin) and over which time window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

#: Window name -> (seconds, buckets).
WINDOWS = {
    "1h": (3600.0, 60),
    "6h": (6 * 3600.0, 72),
    "24h": (86400.0, 96),
    "7d": (7 * 86400.0, 84),
    "30d": (30 * 86400.0, 30),
}


@dataclass(frozen=True)
class Viewer:
    token_id: int
    is_admin: bool
    tenant_id: int | None
    tenant: str | None

    @property
    def scope(self) -> int | None:
        """The tenant whose rows this viewer may see; None: all (admin)."""
        return None if self.is_admin else self.tenant_id

    @property
    def name(self) -> str:
        return "admin" if self.is_admin else (self.tenant or "?")

    def owns(self, tenant_id: int) -> bool:
        return self.is_admin or tenant_id == self.tenant_id


def window(name: str | None, default: str = "1h") -> str:
    return name if name in WINDOWS else default


def edges(name: str, now: float) -> np.ndarray:
    """Bucket edges of a window ending now."""
    span, n = WINDOWS[name]
    return np.linspace(now - span, now, n + 1)


def time_axis(name: str):
    """x-axis label of a window: clock time for short windows, dates for long ones."""
    span = WINDOWS[name][0]
    fmt = "%H:%M" if span <= 86400 else "%m-%d"

    def label(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime(fmt)

    return label
