"""Clusters in the store: who may run an agent (a hashed token per cluster) and its epoch."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from computepool.server.db import ClusterRow

__all__ = [
    "ClusterRow",
    "cluster_for_token",
    "clusters",
    "create_cluster",
    "next_epoch",
    "revoke_cluster",
]
from computepool.server.store import audit, hash_token, new_token

#: Clusters one store may hold.
CLUSTERS_MAX = 1024


def create_cluster(s: Session, name: str, actor: str) -> tuple[ClusterRow, str]:
    """A new cluster and its token (shown once); a revoked cluster of that name gets a new
    token. ValueError when the name is taken or there are too many clusters."""
    row = s.get(ClusterRow, name)
    if row is not None and row.revoked_at is None:
        raise ValueError(f"cluster {name!r} exists (revoke it first to issue a new token)")
    if row is None and len(s.scalars(select(ClusterRow.name)).all()) >= CLUSTERS_MAX:
        raise ValueError(f"at most {CLUSTERS_MAX} clusters")
    token = new_token()
    if row is None:
        row = ClusterRow(name=name, created_at=time.time(), epoch=0, inventory={})
        s.add(row)
    row.token_hash, row.revoked_at = hash_token(token), None
    s.flush()
    audit(s, actor, "cluster.create", f"cluster:{name}")
    return row, token


def cluster_for_token(s: Session, token: str) -> ClusterRow | None:
    if not token or len(token) > 256 or "\x00" in token:
        return None
    return s.scalars(
        select(ClusterRow).where(
            ClusterRow.token_hash == hash_token(token), ClusterRow.revoked_at.is_(None)
        )
    ).first()


def revoke_cluster(s: Session, name: str, actor: str) -> bool:
    row = s.get(ClusterRow, name)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = time.time()
    audit(s, actor, "cluster.revoke", f"cluster:{name}")
    return True


def next_epoch(s: Session, row: ClusterRow, inventory: dict) -> int:
    """Bump the cluster's epoch for a new registration (the caller commits)."""
    row.epoch = (row.epoch or 0) + 1
    row.registered_at = time.time()
    row.inventory = inventory
    return row.epoch


def clusters(s: Session) -> list[ClusterRow]:
    return list(s.scalars(select(ClusterRow).order_by(ClusterRow.name)))
