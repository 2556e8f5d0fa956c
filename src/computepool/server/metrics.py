"""Prometheus metrics of the live pool, in registries of its own (no global state).

Series labelled with a tenant's name are kept in a registry of their own, so ``/metrics``
can leave them out for a caller who may not see other tenants (``render(scope)``); the
pool-wide series (queue length, jobs running, submissions in all) are public.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from computepool.server.live_io import Event
    from computepool.server.service import LiveService

ROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)


class Metrics:
    def __init__(self) -> None:
        #: Accelerators busy per flavor after the last round (read by the API).
        self.busy_now: dict[str, int] = {}
        #: Accelerators held by service replicas per flavor after the last round.
        self.serving_now: dict[str, int] = {}
        self.registry = r = CollectorRegistry()
        #: Series labelled with a tenant (shown only to callers who may see that tenant).
        self.tenant_registry = t = CollectorRegistry()
        self.queued = Gauge(
            "cpool_queue_length",
            "Jobs waiting for accelerators, per tenant",
            ["tenant"],
            registry=t,
        )
        self.running = Gauge(
            "cpool_jobs_running", "Jobs running, per tenant", ["tenant"], registry=t
        )
        self.queued_all = Gauge(
            "cpool_pool_queue_length", "Jobs waiting for accelerators, all tenants", registry=r
        )
        self.running_all = Gauge("cpool_pool_jobs_running", "Jobs running, all tenants", registry=r)
        self.busy = Gauge(
            "cpool_flavor_busy_accelerators",
            "Accelerators held by running jobs",
            ["flavor"],
            registry=r,
        )
        self.serving = Gauge(
            "cpool_flavor_service_accelerators",
            "Accelerators held by service replicas (inference engines)",
            ["flavor"],
            registry=r,
        )
        self.replicas = Gauge(
            "cpool_service_replicas", "Replicas of a service, started", ["service"], registry=r
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
            "cpool_submissions", "Jobs accepted by the API", ["tenant"], registry=t
        )
        self.submissions_all = PromCounter(
            "cpool_pool_submissions", "Jobs accepted by the API, all tenants", registry=r
        )

    def submitted(self, tenant: str) -> None:
        self.submissions.labels(tenant).inc()
        self.submissions_all.inc()

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
        self.queued_all.set(int(np.sum(q)))
        self.running_all.set(int(np.sum(rn)))
        F = len(svc.pool.flavors)
        sf = w.scale_factor[a.job[run]] if run.any() else np.zeros(0)
        used = np.bincount(a.running[run], weights=sf, minlength=F) if run.any() else np.zeros(F)
        self.busy_now = {f.name: int(used[i]) for i, f in enumerate(svc.pool.flavors)}
        self.observe_services(svc)
        for f, flavor in enumerate(svc.pool.flavors):
            self.busy.labels(flavor.name).set(float(used[f]))
            self.util.labels(flavor.name).set(float(used[f]) / max(int(svc.pool.capacity[f]), 1))

    def observe_services(self, svc: LiveService) -> None:
        """Accelerators held by service replicas per flavor, and replicas per service."""
        serving = getattr(svc, "serving", None)
        if serving is None:
            return
        held = serving.held()
        self.serving_now = {f.name: int(held[i]) for i, f in enumerate(svc.pool.flavors)}
        for name, n in self.serving_now.items():
            self.serving.labels(name).set(n)
        for st in serving.states:
            self.replicas.labels(st.spec.name).set(len(st.supervisor.replicas))

    def render(self, tenants: bool | str = True) -> bytes:
        """The exposition text: pool-wide series, and per-tenant ones for ``tenants``: True
        all, False none, a name only that tenant's."""
        text = generate_latest(self.registry)
        if tenants is True:
            return text + generate_latest(self.tenant_registry)
        if tenants:
            return text + generate_latest(OneTenant(self.tenant_registry, tenants))
        return text


class OneTenant:
    """A registry's series narrowed to one tenant's label (a collector for ``generate_latest``)."""

    def __init__(self, registry: CollectorRegistry, tenant: str) -> None:
        self.registry, self.tenant = registry, tenant

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        for m in self.registry.collect():
            out = Metric(m.name, m.documentation, m.type, m.unit)
            out.samples = [x for x in m.samples if x.labels.get("tenant") == self.tenant]
            yield out
