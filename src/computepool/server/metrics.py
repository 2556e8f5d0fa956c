"""Prometheus metrics of the live pool, in a registry of its own (no global state)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

if TYPE_CHECKING:
    from computepool.server.live_io import Event
    from computepool.server.service import LiveService

ROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)


class Metrics:
    def __init__(self) -> None:
        #: Accelerators busy per flavor after the last round (read by the API).
        self.busy_now: dict[str, int] = {}
        self.registry = r = CollectorRegistry()
        self.queued = Gauge(
            "cpool_queue_length",
            "Jobs waiting for accelerators, per tenant",
            ["tenant"],
            registry=r,
        )
        self.running = Gauge(
            "cpool_jobs_running", "Jobs running, per tenant", ["tenant"], registry=r
        )
        self.busy = Gauge(
            "cpool_flavor_busy_accelerators",
            "Accelerators held by running jobs",
            ["flavor"],
            registry=r,
        )
        self.util = Gauge(
            "cpool_flavor_utilisation",
            "Busy / total accelerators, per flavor",
            ["flavor"],
            registry=r,
        )
        self.wait = Histogram(
            "cpool_admission_wait_seconds",
            "Time from submission to first start",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.round = Histogram(
            "cpool_scheduler_round_seconds",
            "Wall time of one scheduler round (including the store write)",
            buckets=ROUND_BUCKETS,
            registry=r,
        )
        self.events = PromCounter("cpool_job_events", "Job lifecycle events", ["kind"], registry=r)
        self.submissions = PromCounter(
            "cpool_submissions", "Jobs accepted by the API", ["tenant"], registry=r
        )

    def observe_round(self, svc: LiveService, seconds: float, events: list[Event]) -> None:
        self.round.observe(seconds)
        kinds = Counter(e.kind for e in events)
        for kind, n in kinds.items():
            self.events.labels(kind).inc(n)
        w, a, h = svc.index.workload, svc.scheduler.active, svc.scheduler.history
        for e in events:
            if e.kind == "running" and h.starts[e.job] == 1:
                self.wait.observe(max(e.at - float(w.arrival[e.job]), 0.0))
        T = len(w.tenants)
        run = a.running >= 0
        tenant = w.tenant[a.job] if len(a) else np.zeros(0, dtype=np.int32)
        q = np.bincount(tenant[~run], minlength=T) if T else []
        rn = np.bincount(tenant[run], minlength=T) if T else []
        for i, name in enumerate(w.tenants):
            self.queued.labels(name).set(int(q[i]))
            self.running.labels(name).set(int(rn[i]))
        F = len(svc.pool.flavors)
        sf = w.scale_factor[a.job[run]] if run.any() else np.zeros(0)
        used = np.bincount(a.running[run], weights=sf, minlength=F) if run.any() else np.zeros(F)
        self.busy_now = {f.name: int(used[i]) for i, f in enumerate(svc.pool.flavors)}
        for f, flavor in enumerate(svc.pool.flavors):
            self.busy.labels(flavor.name).set(float(used[f]))
            self.util.labels(flavor.name).set(float(used[f]) / max(int(svc.pool.capacity[f]), 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)
