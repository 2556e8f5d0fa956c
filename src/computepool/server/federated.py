"""The federated backend inside ``cpool serve --backend federated``: its factory, and its
links to the service (the residency verdict of each start, the clusters known before)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from computepool.admission.residency import ResidencyCheck
from computepool.backends.worker_env import Launch
from computepool.federation.backend import FederatedCluster
from computepool.federation.protocol import Ticket
from computepool.federation.residency import make_ticket
from computepool.model.pool import Pool
from computepool.server.db import ClusterRow


def federated_factory(lease_s: float) -> Callable[..., FederatedCluster]:
    def factory(
        pool: Pool, root: Path, describe: Callable[[int], Launch], grace_s: float
    ) -> FederatedCluster:
        return FederatedCluster(pool, root, describe, lease_s=lease_s)

    return factory


def ticket_fn(check: ResidencyCheck, service) -> Callable[[int, str], Ticket]:
    """The residency ticket of a start of workload index ``job`` in ``region``."""
    pool = service.pool

    def ticket(job: int, region: str) -> Ticket:
        wl = service.index.workload
        datasets = wl.profiles[int(wl.data_profile[job])]
        v = check.verdict(datasets, region, pool)
        jur = pool.regions[region].jurisdiction
        return make_ticket(datasets, region, jur, v, check.approvals, check.now)

    return ticket


def wire_service(service, check: ResidencyCheck | None, sessions: sessionmaker) -> None:
    fed: FederatedCluster = service.cluster
    fed.bind_tickets(ticket_fn(check or ResidencyCheck(pool=service.pool), service))
    with sessions() as s:
        known = s.scalars(
            select(ClusterRow.name).where(ClusterRow.revoked_at.is_(None), ClusterRow.epoch > 0)
        ).all()
    fed.expect(set(known))
