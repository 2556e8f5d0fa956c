"""The live autoscaler: replicas' /metrics -> the same autoscaler functions -> ``scale_to``.

Every ``interval_s`` it scrapes each replica (requests so far, queue depth), turns the counter
deltas into a request rate (with the highest rate over ``burst_window_s`` slices, as in the
simulator), adds the backlog to drain, applies the forecast and the scale-down hold, and asks
the ``Supervisor`` for ``ceil(need / replica capacity)`` replicas within [min, max]. The replica
capacity comes from the performance model of the replica's shape at the service's mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import numpy as np

from computepool.serving import autoscaler as asc
from computepool.serving.emulator import ReplicaTiming, parse_metrics
from computepool.serving.perf import Mix, ShapeTable
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
    t: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)  # requests seen (cumulative, all replicas)
    rate: list[float] = field(default_factory=list)
    need: list[float] = field(default_factory=list)
    decisions: list[tuple[float, int, float]] = field(default_factory=list)
    _last: dict[int, float] = field(default_factory=dict)
    _seen: float = 0.0

    def scrape(self) -> tuple[float, float]:
        """(requests seen so far by all replicas, requests waiting now)."""
        queued = 0.0
        with httpx.Client(timeout=1.0) as client:
            for r in self.supervisor.replicas:
                try:
                    m = parse_metrics(client.get(f"{r.url}/metrics").text)
                except httpx.HTTPError:
                    continue
                req = m.get("cpool_replica_requests_total", 0.0)
                prev = self._last.get(r.port, 0.0)
                self._seen += req - prev if req >= prev else req  # restarted: counter reset
                self._last[r.port] = req
                queued += m.get("cpool_replica_queue_depth", 0.0)
        return self._seen, queued

    def tick(self, now: float) -> int:
        """One autoscaling decision at ``now`` (seconds, any origin); returns the replicas."""
        cfg = self.cfg
        seen, queued = self.scrape()
        self.t.append(now)
        self.total.append(seen)
        t, tot = np.asarray(self.t), np.asarray(self.total)
        i = int(np.searchsorted(t, now - cfg.window_s))
        span = max(now - t[i], 1e-9)
        rate = (seen - tot[i]) / span if len(t) > 1 else 0.0
        if len(t) > 1:  # the busiest interval since the last decision
            rate = max(rate, (tot[-1] - tot[-2]) / max(t[-1] - t[-2], 1e-9))
        self.rate.append(rate)
        need = asc.forecast_rate(t, np.asarray(self.rate), now, cfg)
        need = asc.needed_rate(need, queued * self.mix.prefill_flops, self.mix, cfg)
        self.need.append(need)
        floor = asc.scale_down_floor(t, np.asarray(self.need), now, cfg.scale_down_delay_s)
        shape = timing_shape(self.timing)
        from computepool.serving.perf import capacity_rps

        cap = float(capacity_rps(shape, self.mix, self.tbt_slo_s, cfg.target_utilization)[0])
        now_n = len(self.supervisor.replicas)
        want = asc.replicas_for(need, cap, self.min_replicas, self.max_replicas)
        keep = asc.replicas_for(floor, cap, self.min_replicas, self.max_replicas)
        n = max(want, min(now_n, keep))
        if n != now_n:
            self.supervisor.scale_to(n)
        self.decisions.append((now, n, need))
        return n
