"""Prometheus series of the gateway: requests, tokens, latency and TTFT per service (public),
requests and tokens per tenant and service (in the tenant registry: an admin's, or a tenant's
own), and each service's replicas ready / desired."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from computepool.server.service_directory import ServiceInfo

COLD_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry, tenant_registry: CollectorRegistry) -> None:
        r, t = registry, tenant_registry
        self.requests = Counter(
            "cpool_gateway_requests",
            "Gateway requests per service and HTTP status",
            ["service", "code"],
            registry=r,
        )
        self.tokens = Counter(
            "cpool_gateway_tokens",
            "Tokens through the gateway per service (kind: prompt, completion)",
            ["service", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "cpool_gateway_request_seconds",
            "Gateway request wall time, to the last byte, per service",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "cpool_gateway_ttft_seconds",
            "Time to the first streamed chunk, per service",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(
            "cpool_service_replicas_ready", "Healthy replicas per service", ["service"], registry=r
        )
        self.desired = Gauge(
            "cpool_service_replicas_desired",
            "Replicas the autoscaler wants per service",
            ["service"],
            registry=r,
        )
        self.cold_starts = Counter(
            "cpool_service_cold_starts",
            "Cold starts of a service scaled to zero (a held request woke it)",
            ["service"],
            registry=r,
        )
        self.cold_start_seconds = Histogram(
            "cpool_service_cold_start_seconds",
            "Cold start: first held request to first ready replica, per service",
            ["service"],
            buckets=COLD_BUCKETS,
            registry=r,
        )
        self.activator_refused = Counter(
            "cpool_gateway_activator_refused",
            "Requests the activator refused (reason: queue, tenant, timeout, standby)",
            ["service", "reason"],
            registry=r,
        )
        self.tenant_requests = Counter(
            "cpool_gateway_tenant_requests",
            "Gateway requests per tenant and service",
            ["tenant", "service"],
            registry=t,
        )
        self.tenant_tokens = Counter(
            "cpool_gateway_tenant_tokens",
            "Tokens through the gateway per tenant and service (kind: prompt, completion)",
            ["tenant", "service", "kind"],
            registry=t,
        )
        self.rate_limited = Counter(
            "cpool_gateway_rate_limited",
            "Gateway requests refused by the tenant's rate limit",
            ["tenant"],
            registry=t,
        )

    def services(self, infos: Sequence[ServiceInfo]) -> None:
        for s in infos:
            self.ready.labels(s.name).set(s.ready)
            self.desired.labels(s.name).set(s.desired)

    def done(
        self, tenant: str, service: str, code: int, prompt: int, completion: int, wall_s: float
    ) -> None:
        self.requests.labels(service, str(code)).inc()
        self.tenant_requests.labels(tenant, service).inc()
        self.latency.labels(service).observe(wall_s)
        if prompt or completion:
            self.tokens.labels(service, "prompt").inc(prompt)
            self.tokens.labels(service, "completion").inc(completion)
            self.tenant_tokens.labels(tenant, service, "prompt").inc(prompt)
            self.tenant_tokens.labels(tenant, service, "completion").inc(completion)
