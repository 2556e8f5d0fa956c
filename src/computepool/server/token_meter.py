"""Token metering of the gateway: requests add up in memory per (tenant, service, model) and
are written to the store (``token_usage``) by ``flush()``, every second or so, one row per key,
priced from the catalog (``catalog/data/serving/token_prices.yaml``).

What a crash loses: the tokens of the last second at most (not yet flushed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from computepool.catalog.token_prices import TokenPrices
from computepool.server.db import TenantRow, TokenUsageRow


@dataclass
class _Open:
    start: float
    end: float
    requests: int = 0
    prompt: int = 0
    completion: int = 0
    estimated: int = 0


@dataclass
class TokenMeter:
    prices: TokenPrices
    _open: dict[tuple[int, str, str], _Open] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        tenant_id: int,
        service: str,
        model: str,
        prompt: int,
        completion: int,
        estimated: bool = False,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        with self._lock:
            o = self._open.get((tenant_id, service, model))
            if o is None:
                o = self._open[(tenant_id, service, model)] = _Open(now, now)
            o.end = max(o.end, now)
            o.requests += 1
            o.prompt += max(int(prompt), 0)
            o.completion += max(int(completion), 0)
            o.estimated += int(estimated)

    def pending(self) -> bool:
        return bool(self._open)

    def flush(self, sessions: sessionmaker, lock: threading.Lock | None = None) -> int:
        """Write what was added since the last flush; returns the rows written. On a store
        error the amounts are kept for the next flush."""
        with self._lock:
            taken, self._open = self._open, {}
        if not taken:
            return 0
        rows = [
            TokenUsageRow(
                tenant_id=t, service=svc, model=model, start=o.start, end=o.end,
                requests=o.requests, prompt_tokens=o.prompt, completion_tokens=o.completion,
                estimated=o.estimated,
                cost_usd=self.prices.of(svc, model).cost(o.prompt, o.completion),
            )
            for (t, svc, model), o in taken.items()
        ]  # fmt: skip
        try:
            if lock is None:
                _write(sessions, rows)
            else:
                with lock:
                    _write(sessions, rows)
        except Exception:
            with self._lock:  # put them back: the next flush tries again
                for key, o in taken.items():
                    have = self._open.get(key)
                    if have is not None:
                        o.start, o.end = min(o.start, have.start), max(o.end, have.end)
                        o.requests += have.requests
                        o.prompt += have.prompt
                        o.completion += have.completion
                        o.estimated += have.estimated
                    self._open[key] = o
            raise
        return len(rows)


def _write(sessions: sessionmaker, rows: list[TokenUsageRow]) -> None:
    with sessions() as s:
        s.add_all(rows)
        s.commit()


@dataclass(frozen=True)
class TokenUsage:
    tenant: str
    service: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    estimated: int
    cost_usd: float


def token_usage(
    s: Session, tenant_id: int | None = None, since: float | None = None
) -> list[TokenUsage]:
    """Tokens per tenant, service and model (rows ending after ``since``, if given)."""
    q = (
        select(
            TenantRow.name,
            TokenUsageRow.service,
            TokenUsageRow.model,
            func.sum(TokenUsageRow.requests),
            func.sum(TokenUsageRow.prompt_tokens),
            func.sum(TokenUsageRow.completion_tokens),
            func.sum(TokenUsageRow.estimated),
            func.sum(TokenUsageRow.cost_usd),
        )
        .join(TenantRow, TokenUsageRow.tenant_id == TenantRow.id)
        .group_by(TenantRow.name, TokenUsageRow.service, TokenUsageRow.model)
        .order_by(TenantRow.name, TokenUsageRow.service, TokenUsageRow.model)
    )
    if tenant_id is not None:
        q = q.where(TokenUsageRow.tenant_id == tenant_id)
    if since is not None:
        q = q.where(TokenUsageRow.end > since)
    return [
        TokenUsage(n, svc, m, int(r or 0), int(p or 0), int(c or 0), int(e or 0), float(u or 0))
        for n, svc, m, r, p, c, e, u in s.execute(q)
    ]


def tokens_by_service(
    s: Session, tenant_id: int | None = None, since: float | None = None
) -> dict[str, tuple[int, int, float]]:
    """(requests, tokens, USD) per service: one tenant's, or all tenants' (the dashboard)."""
    q = select(
        TokenUsageRow.service,
        func.sum(TokenUsageRow.requests),
        func.sum(TokenUsageRow.prompt_tokens + TokenUsageRow.completion_tokens),
        func.sum(TokenUsageRow.cost_usd),
    ).group_by(TokenUsageRow.service)
    if tenant_id is not None:
        q = q.where(TokenUsageRow.tenant_id == tenant_id)
    if since is not None:
        q = q.where(TokenUsageRow.end > since)
    return {svc: (int(r or 0), int(t or 0), float(u or 0.0)) for svc, r, t, u in s.execute(q)}
