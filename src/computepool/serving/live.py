"""The live autoscaler: replicas' /metrics -> the same autoscaler functions -> ``scale_to``.

It scrapes each replica every few seconds (``observe``: requests and prompt tokens so far, queue
depth, read from the engine's own Prometheus names by its metrics adapter, ``engines/metrics.py``:
vLLM's ``vllm:*`` by default); every ``interval_s`` (``tick``) it turns the counter deltas into a request rate (with the
busiest slice between scrapes and the prompt work that arrived in it, as the simulator does with
its burst windows), adds the backlog to drain, applies the forecast and the scale-down hold, and asks
the ``Supervisor`` for ``ceil(need / replica capacity)`` replicas within [min, max]. The replica
capacity comes from the performance model of the replica's shape at the service's mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import numpy as np

from computepool.serving import autoscaler as asc
from computepool.serving.emulator import ReplicaTiming
from computepool.serving.engines.metrics import VLLM, MetricNames, read_load
from computepool.serving.perf import Mix, ShapeTable, capacity_rps
from computepool.serving.service import ServingConfig
from computepool.serving.supervisor import Supervisor


def timing_shape(t: ReplicaTiming) -> ShapeTable:
    one = lambda v: np.array([float(v)])  # noqa: E731
    return ShapeTable(
        flavor=np.array([0]),
        tp=np.array([1]),
        frac=one(1),
        devices=one(1),
        price_h=one(1),
        flops=one(t.flops),
        a=one(t.a),
        kvr=one(t.kvr),
        c=one(t.c),
        kv_cap=one(t.kv_cap),
        start_s=one(t.start_s),
        names=(t.label,),
    )


@dataclass
class LiveAutoscaler:
    supervisor: Supervisor
    timing: ReplicaTiming
    mix: Mix
    tbt_slo_s: float = 0.1
    min_replicas: int = 1
    max_replicas: int = 16
    cfg: ServingConfig = field(default_factory=ServingConfig)
    #: Request rate the initial replicas were sized for (held for ``scale_down_delay_s``).
    initial_need: float = 0.0
    #: The engine's metric names (None: it publishes none; no load is seen).
    metrics: MetricNames | None = VLLM
    t: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)  # requests seen (cumulative, all replicas)
    tokens: list[float] = field(default_factory=list)  # prompt tokens seen (cumulative)
    decision_t: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    need: list[float] = field(default_factory=list)
    decisions: list[tuple[float, int, float]] = field(default_factory=list)
    #: Requests waiting at the replicas at the last decision.
    queued: float = 0.0
    _last: dict[tuple[int, int], float] = field(default_factory=dict)
    _seen: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def scrape(self) -> tuple[float, float, float]:
        """(requests seen so far by all replicas, their prompt tokens, requests waiting now)."""
        queued = 0.0
        if self.metrics is None:
            return self._seen[0], self._seen[1], queued
        with httpx.Client(timeout=1.0) as client:
            for r in self.supervisor.replicas:
                try:
                    load = read_load(client.get(self.supervisor.metrics_url(r)).text, self.metrics)
                except httpx.HTTPError:
                    continue
                if load is None:
                    continue
                for v, acc in ((load.requests_total, 0), (load.prompt_tokens_total, 1)):
                    prev = self._last.get((r.port, acc), 0.0)
                    self._seen[acc] += v - prev if v >= prev else v  # restarted: reset counter
                    self._last[(r.port, acc)] = v
                queued += load.waiting
        return self._seen[0], self._seen[1], queued

    def observe(self, now: float) -> float:
        """Scrape the replicas (every few seconds); returns the requests waiting."""
        seen, tokens, queued = self.scrape()
        self.t.append(now)
        self.total.append(seen)
        self.tokens.append(tokens)
        return queued

    def tick(self, now: float, apply: bool = True) -> int:
        """One autoscaling decision at ``now`` (seconds, any origin); returns the replicas.

        As in the simulator: the rate is the highest of the last ``window_s`` and of the
        slices between scrapes; prompt work arriving in the busiest slice must be prefillable
        within it at the target utilisation; plus forecast, backlog and the scale-down hold.
        """
        cfg = self.cfg
        queued = self.observe(now)
        self.queued = queued
        self.decision_t.append(now)
        if len(self.t) < 2:  # a baseline sample: no rate yet, no decision
            self.rate.append(0.0)
            self.need.append(self.initial_need)
            return len(self.supervisor.replicas)
        t, tot, tok = np.asarray(self.t), np.asarray(self.total), np.asarray(self.tokens)
        i = int(np.searchsorted(t, now - cfg.window_s))
        i = min(i, len(t) - 2)
        rate = (tot[-1] - tot[i]) / max(now - t[i], 1e-9)
        dt = np.maximum(np.diff(t[i:]), 1e-9)
        rate = max(rate, float((np.diff(tot[i:]) / dt).max()))
        m = self.timing.model
        flops_per_token = self.mix.prefill_flops / max(self.mix.context_tokens, 1.0)
        work = float((np.diff(tok[i:]) / dt).max()) * flops_per_token
        rate = max(rate, work / max(self.mix.prefill_flops, 1.0) * cfg.target_utilization)
        del m
        self.rate.append(rate)
        dec_t = np.asarray(self.decision_t)
        need = asc.forecast_rate(dec_t, np.asarray(self.rate), now, cfg)
        need = asc.needed_rate(need, queued * self.mix.prefill_flops, self.mix, cfg)
        self.need.append(need)
        floor = asc.scale_down_floor(dec_t, np.asarray(self.need), now, cfg.scale_down_delay_s)
        cap = float(
            capacity_rps(
                timing_shape(self.timing), self.mix, self.tbt_slo_s, cfg.target_utilization
            )[0]  # fmt: skip
        )
        now_n = len(self.supervisor.replicas)
        n = asc.replicas_after(need, floor, cap, now_n, self.min_replicas, self.max_replicas)
        if apply and n != now_n:
            self.supervisor.scale_to(n)
        self.decisions.append((now, n, need))
        return n
