"""Per-tenant rate limits of the gateway: requests a second and tokens a minute, as token
buckets (the clock is passed in: the buckets are pure arithmetic, tested without sleeping).

A request is admitted when its tenant's request bucket holds one request and its token
bucket is not in debt; the tokens a request used (prompt + completion, known only once it
has finished) are then taken from the token bucket, which may go below zero: the tenant
waits until it has paid that back. A refusal says how long to wait (``Retry-After``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` units a second, at most ``burst`` held; starts full."""

    rate: float
    burst: float
    level: float = math.nan
    at: float = math.nan

    def __post_init__(self) -> None:
        if math.isnan(self.level):
            self.level = self.burst

    def refill(self, now: float) -> None:
        if not math.isnan(self.at) and now > self.at:
            self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        if math.isnan(self.at) or now > self.at:
            self.at = now

    def wait_s(self, need: float, now: float) -> float:
        """Seconds until ``need`` units are held (0: now)."""
        self.refill(now)
        short = need - self.level
        return 0.0 if short <= 1e-12 else short / self.rate

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount


@dataclass(frozen=True)
class Limits:
    """A tenant's limits; None: unlimited."""

    requests_per_s: float | None = None
    tokens_per_min: float | None = None


@dataclass
class TenantLimiter:
    """The buckets of every tenant (keyed by tenant id), rebuilt when its limits change."""

    #: Burst of the request bucket, in seconds of its rate (at least one request).
    burst_s: float = 1.0
    _buckets: dict[int, tuple[Limits, TokenBucket | None, TokenBucket | None]] = field(
        default_factory=dict
    )

    def _of(self, tenant: int, limits: Limits) -> tuple[TokenBucket | None, TokenBucket | None]:
        have = self._buckets.get(tenant)
        if have is not None and have[0] == limits:
            return have[1], have[2]
        rps, tpm = limits.requests_per_s, limits.tokens_per_min
        req = None if rps is None else TokenBucket(rps, max(1.0, rps * self.burst_s))
        tok = None if tpm is None else TokenBucket(tpm / 60.0, tpm)
        self._buckets[tenant] = (limits, req, tok)
        return req, tok

    def admit(self, tenant: int, limits: Limits, now: float) -> float:
        """0.0 and one request taken, or the seconds to wait before asking again."""
        req, tok = self._of(tenant, limits)
        wait = 0.0
        if tok is not None:
            # in debt (or empty): wait until the bucket holds a token again
            wait = tok.wait_s(1.0, now)
        if req is not None:
            wait = max(wait, req.wait_s(1.0, now))
        if wait > 0:
            return wait
        if req is not None:
            req.take(1.0, now)
        return 0.0

    def charge(self, tenant: int, tokens: int, now: float) -> None:
        """Take the tokens a finished request used."""
        have = self._buckets.get(tenant)
        if have is not None and have[2] is not None and tokens > 0:
            have[2].take(float(tokens), now)
