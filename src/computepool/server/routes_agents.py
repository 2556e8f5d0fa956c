"""The agent protocol's endpoints (``cpool agent``) and the clusters' admin endpoints.

An agent authenticates with its cluster's token (``POST /v1/clusters`` or ``cpool admin
cluster add`` issue it; stored hashed) and may speak for that cluster only: the body's
``cluster`` must be the token's, and the federated backend refuses reports about attempts of
other clusters or of an older epoch (docs/federation.md).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request

from computepool.federation.backend import FederatedCluster, StaleSession
from computepool.federation.protocol import (
    CLUSTER_PATTERN,
    HeartbeatIn,
    HeartbeatOut,
    RegisterIn,
    RegisterOut,
)
from computepool.federation.sessions import InventoryError
from computepool.server import clusters_store
from computepool.server.app import ApiError
from computepool.server.routes_admin import Admin
from computepool.server.routes_jobs import ERRORS, ctx_of

router = APIRouter(prefix="/v1", responses=ERRORS)
ClusterPath = Annotated[str, Path(pattern=CLUSTER_PATTERN, max_length=63)]


def federated(request: Request) -> FederatedCluster:
    c = ctx_of(request).service.cluster
    if not isinstance(c, FederatedCluster):
        raise ApiError(409, "backend", "this server does not run the federated backend")
    return c


def cluster_of(request: Request, authorization: str | None, claimed: str) -> str:
    """The cluster the bearer token belongs to; 401 for no or a revoked token, 403 when the
    body speaks for another cluster."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ApiError(401, "authorization", "missing 'Authorization: Bearer <token>' header")
    with ctx_of(request).sessions() as s:
        row = clusters_store.cluster_for_token(s, authorization[7:].strip())
        name = row.name if row is not None else None
    if name is None:
        raise ApiError(401, "authorization", "unknown or revoked cluster token")
    if name != claimed:
        raise ApiError(403, "cluster", f"this token is cluster {name!r}'s, not {claimed!r}'s")
    return name


@router.post("/agent/register", response_model=RegisterOut, tags=["agents"])
def register(
    body: RegisterIn, request: Request, authorization: Annotated[str | None, Header()] = None
) -> RegisterOut:
    """Open a session for the cluster (a new epoch); its agent has stopped whatever it ran."""
    fed = federated(request)
    name = cluster_of(request, authorization, body.cluster)
    try:
        fed.check_inventory(name, body.inventory)
    except InventoryError as exc:
        raise ApiError(422, exc.field, exc.reason) from None
    ctx = ctx_of(request)
    inv = {"regions": [r.name for r in body.inventory.regions], "nodes": len(body.inventory.nodes)}
    with ctx.service.write_lock, ctx.sessions() as s:
        row = s.get(clusters_store.ClusterRow, name)
        if row is None or row.revoked_at is not None:
            raise ApiError(401, "authorization", "unknown or revoked cluster token")
        epoch = clusters_store.next_epoch(s, row, inv)
        s.commit()
    try:
        got = fed.register(name, body.inventory, epoch, body.agent, body.health)
    except InventoryError as exc:
        raise ApiError(422, exc.field, exc.reason) from None
    return RegisterOut(cluster=name, **got)


@router.post("/agent/heartbeat", response_model=HeartbeatOut, tags=["agents"])
def heartbeat(
    body: HeartbeatIn, request: Request, authorization: Annotated[str | None, Header()] = None
) -> HeartbeatOut:
    """Renew the lease, take the agent's reports, answer with its commands (long poll)."""
    received = time.monotonic()
    fed = federated(request)
    cluster_of(request, authorization, body.cluster)
    try:
        return fed.heartbeat(body, received)
    except StaleSession as exc:
        raise ApiError(409, "epoch", str(exc)) from None


@router.get("/clusters", tags=["admin"])
def list_clusters(request: Request, _caller: Admin) -> list[dict]:
    """Every cluster on record with its agent's session: state, lease, health, nodes."""
    ctx = ctx_of(request)
    c = ctx.service.cluster
    live = {x["name"]: x for x in c.clusters()} if isinstance(c, FederatedCluster) else {}
    with ctx.sessions() as s:
        rows = clusters_store.clusters(s)
        out = []
        for r in rows:
            x = live.get(r.name) or {"name": r.name, "state": "never registered"}
            if r.revoked_at is not None:
                x = {**x, "state": "revoked"}
            out.append({**x, "created_at": r.created_at, "epoch": r.epoch})
    return out


@router.post("/clusters/{name}", status_code=201, tags=["admin"])
def create_cluster(name: ClusterPath, request: Request, caller: Admin) -> dict:
    """Issue a cluster's agent token (shown once, stored hashed)."""
    ctx = ctx_of(request)
    with ctx.service.write_lock, ctx.sessions() as s:
        try:
            _row, token = clusters_store.create_cluster(s, name, caller.actor)
        except ValueError as exc:
            raise ApiError(409, "name", str(exc)) from None
        s.commit()
    return {"name": name, "token": token}


@router.delete("/clusters/{name}", status_code=204, tags=["admin"])
def revoke_cluster(name: ClusterPath, request: Request, caller: Admin) -> None:
    """Revoke a cluster's token: its agent's next request is refused, its lease runs out."""
    ctx = ctx_of(request)
    with ctx.service.write_lock, ctx.sessions() as s:
        if not clusters_store.revoke_cluster(s, name, caller.actor):
            raise ApiError(404, "name", f"no active cluster {name!r}")
        s.commit()
