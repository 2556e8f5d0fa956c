"""Audit records of placement decisions: job, region, rules consulted, rule that allowed it.

Stored as columns plus a table of distinct decisions, so a simulation with a million starts
keeps a few arrays; ``records`` turns them into plain dicts (JSON lines, the API, the DB).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALLOWED, REJECTED = "allowed", "rejected"


@dataclass(frozen=True)
class Decision:
    outcome: str
    consulted: tuple[str, ...]
    #: Grants that allowed each dataset ("CN-5/allow[0]"), or the rule that refused.
    decided_by: tuple[str, ...]
    approvals: tuple[str, ...] = ()
    reason: str = ""

    @property
    def rules(self) -> tuple[str, ...]:
        """Rule ids of ``decided_by`` (without the grant index)."""
        return tuple(dict.fromkeys(d.split("/", 1)[0] for d in self.decided_by))


@dataclass
class AuditLog:
    time: list[float] = field(default_factory=list)
    job: list[int] = field(default_factory=list)
    #: Flavor name; "" for a rejection.
    flavor: list[str] = field(default_factory=list)
    decision: list[int] = field(default_factory=list)
    transfer_gb: list[float] = field(default_factory=list)
    egress_usd: list[float] = field(default_factory=list)
    delay_s: list[float] = field(default_factory=list)
    #: Datasets a start counted on person counters: (handler, origin, counter, year, dataset,
    #: persons) each; the live store keeps the counters from these.
    exports: list[tuple] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    _index: dict[Decision, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.time)

    def _decision_id(self, d: Decision) -> int:
        i = self._index.get(d)
        if i is None:
            i = self._index[d] = len(self.decisions)
            self.decisions.append(d)
        return i

    def add(
        self,
        time: float,
        job: int,
        flavor: str,
        decision: Decision,
        transfer_gb: float = 0.0,
        egress_usd: float = 0.0,
        delay_s: float = 0.0,
        exports: tuple = (),
    ) -> None:
        self.time.append(float(time))
        self.job.append(int(job))
        self.flavor.append(flavor)
        self.decision.append(self._decision_id(decision))
        self.transfer_gb.append(float(transfer_gb))
        self.egress_usd.append(float(egress_usd))
        self.delay_s.append(float(delay_s))
        self.exports.append(exports)

    def clear(self) -> None:
        """Drop the records and their decisions (the live pool keeps them in its store)."""
        for col in (self.time, self.job, self.flavor, self.decision, self.transfer_gb,
                    self.egress_usd, self.delay_s, self.exports, self.decisions):  # fmt: skip
            col.clear()
        self._index.clear()

    def counts_by_rule(self) -> dict[str, dict[str, int]]:
        """{"allowed": {rule: starts}, "rejected": {rule: jobs}}; a start allowed by several
        datasets' rules counts once for each rule."""
        out: dict[str, Counter[str]] = {ALLOWED: Counter(), REJECTED: Counter()}
        per_decision = Counter(self.decision)
        for i, n in per_decision.items():
            d = self.decisions[i]
            for r in d.rules or ("(no datasets)",):
                out[d.outcome][r] += n
        return {k: dict(sorted(v.items())) for k, v in out.items()}

    def record(
        self, k: int, job_ids: Sequence[str] | None = None, tenants: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Record ``k`` as a plain dict."""
        d = self.decisions[self.decision[k]]
        j = self.job[k]
        flavor = self.flavor[k]
        return {
            "time": self.time[k],
            "job": job_ids[j] if job_ids is not None else str(j),
            "tenant": tenants[j] if tenants is not None else "",
            "outcome": d.outcome,
            "region": flavor.split("/", 1)[0] if flavor else "",
            "flavor": flavor,
            "rules_consulted": list(d.consulted),
            "decided_by": list(d.decided_by),
            "approvals": list(d.approvals),
            "transfer_gb": self.transfer_gb[k],
            "egress_usd": self.egress_usd[k],
            "delay_s": self.delay_s[k],
            "reason": d.reason,
            "exports": [list(e) for e in self.exports[k]],
        }

    def records(
        self, job_ids: Sequence[str] | None = None, tenants: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        for k in range(len(self)):
            yield self.record(k, job_ids, tenants)

    def write_jsonl(
        self,
        path: str | Path,
        job_ids: Sequence[str] | None = None,
        tenants: Sequence[str] | None = None,
    ) -> int:
        n = 0
        with Path(path).open("w") as fh:
            for rec in self.records(job_ids, tenants):
                fh.write(json.dumps(rec) + "\n")
                n += 1
        return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Audit records written by ``write_jsonl``; errors name the file and line."""
    out = []
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file")
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: line {n}: not valid JSON: {exc.msg}") from None
        if not isinstance(rec, dict) or "outcome" not in rec or "job" not in rec:
            raise ValueError(f"{p}: line {n}: not an audit record (needs 'job' and 'outcome')")
        out.append(rec)
    return out
