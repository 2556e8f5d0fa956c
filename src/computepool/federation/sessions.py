"""Clusters as the control plane sees them: a session per agent registration, with its lease.

A session is opened by a registration (a new epoch, the fencing token) and lives while its
agent renews its lease; when the lease runs out the cluster is *lost*: its nodes are cordoned
and its jobs requeued. The agent, for its part, stops its workers before that moment
(``fence.py``), so a job requeued elsewhere never runs twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from computepool.federation.protocol import Health, Inventory
from computepool.model.pool import Pool


class InventoryError(ValueError):
    """An agent's inventory does not fit the control plane's pool (field, reason)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass
class ClusterSession:
    name: str
    epoch: int
    #: Pool node indices the cluster's agent runs.
    nodes: tuple[int, ...]
    #: Region name -> jurisdiction, as its agent reported them.
    regions: dict[str, str]
    #: Monotonic time its lease ends (the agent stops its workers before it).
    lease_until: float
    registered_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    health: Health = field(default_factory=Health)
    agent: str = ""
    #: Why the cluster was lost ("" while its lease holds).
    lost: str = ""
    lost_at: float | None = None
    #: Reports refused (another cluster's attempt, an unknown id) since registration.
    refused_reports: int = 0

    @property
    def live(self) -> bool:
        return not self.lost

    def public(self, now_mono: float) -> dict:
        return {
            "name": self.name,
            "state": "lost" if self.lost else "ready",
            "epoch": self.epoch,
            "regions": dict(self.regions),
            "nodes": len(self.nodes),
            "lease_left_s": round(max(0.0, self.lease_until - now_mono), 2) if self.live else 0,
            "registered_at": self.registered_at,
            "last_seen": self.last_seen,
            "lost": self.lost,
            "lost_at": self.lost_at,
            "health": self.health.model_dump(),
            "agent": self.agent,
            "refused_reports": self.refused_reports,
        }


def match_inventory(
    pool: Pool, inv: Inventory, owners: list[str | None], cluster: str
) -> tuple[tuple[int, ...], dict[str, str]]:
    """The pool node indices and regions of ``inv``; InventoryError names the first field
    that does not match the pool (an unknown node, another region, accelerator or count, a
    node another live cluster runs, a region whose jurisdiction differs)."""
    regions: dict[str, str] = {}
    for i, r in enumerate(inv.regions):
        known = pool.regions.get(r.name)
        if known is None:
            raise InventoryError(f"inventory.regions.{i}.name", f"{r.name!r} is not in the pool")
        if known.jurisdiction != r.jurisdiction:
            raise InventoryError(
                f"inventory.regions.{i}.jurisdiction",
                f"{r.name!r} is in {known.jurisdiction}, not {r.jurisdiction!r}",
            )
        regions[r.name] = r.jurisdiction
    index = {n.name: i for i, n in enumerate(pool.nodes)}
    seen: set[int] = set()
    for i, n in enumerate(inv.nodes):
        where = f"inventory.nodes.{i}"
        k = index.get(n.name)
        if k is None:
            raise InventoryError(f"{where}.name", f"{n.name[:128]!r} is not a node of the pool")
        if k in seen:
            raise InventoryError(f"{where}.name", f"{n.name!r} is listed twice")
        node = pool.nodes[k]
        for attr in ("region", "accelerator", "count"):
            if getattr(n, attr) != getattr(node, attr):
                raise InventoryError(
                    f"{where}.{attr}",
                    f"{n.name!r} has {attr} {getattr(node, attr)!r} in the pool, "
                    f"not {getattr(n, attr)!r}",
                )
        if n.region not in regions:
            raise InventoryError(f"{where}.region", f"{n.region!r} is not in inventory.regions")
        owner = owners[k]
        if owner is not None and owner != cluster:
            raise InventoryError(f"{where}.name", f"{n.name!r} is run by cluster {owner!r}")
        seen.add(k)
    return tuple(sorted(seen)), regions
