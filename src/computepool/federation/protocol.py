"""The agent protocol: the messages between the control plane and a cluster's ``cpool agent``.

An agent speaks first and always (it may sit behind a firewall the control plane cannot
cross): ``POST /v1/agent/register`` with its inventory opens a session with a new epoch;
``POST /v1/agent/heartbeat`` renews the session's lease, carries the agent's reports (worker
state, exits, refusals, log tails) and brings back the commands for it (start, stop). Every
field is bounded: an agent is hostile input like a tenant (docs/federation.md).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from computepool import bounds as B
from computepool.bounds import BoundedModel

#: A cluster's name: lower-case letters, digits and dashes (a DNS label).
CLUSTER_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ClusterName = Annotated[str, Field(pattern=CLUSTER_PATTERN, max_length=63)]
#: Attempt ids the control plane hands out: ``<cluster epoch>-<sequence>``.
AttemptId = Annotated[str, Field(pattern=r"^[0-9]{1,12}-[0-9]{1,15}$", max_length=32)]
Short = Annotated[str, Field(max_length=B.SHORT_MAX)]
Name = Annotated[str, Field(max_length=B.NAME_MAX)]

NODES_MAX = 4096
REGIONS_MAX = 64
LABELS_MAX = 32
#: Reports (and attempt ids) in one heartbeat.
REPORTS_MAX = 4096
#: Log bytes of one rank in one report, and of one heartbeat in all.
LOG_CHUNK_MAX = 16 * 1024
LOG_CHUNKS_MAX = 64
DEVICES_MAX = 64


class RegionIn(BoundedModel):
    name: Short = Field(min_length=1)
    jurisdiction: Short = Field(min_length=1)


class NodeIn(BoundedModel):
    name: Name = Field(min_length=1)
    region: Short = Field(min_length=1)
    accelerator: Short = Field(min_length=1)
    count: int = Field(ge=1, le=DEVICES_MAX)
    island: Name = ""
    labels: dict[Short, Name] = Field(default_factory=dict, max_length=LABELS_MAX)


class Inventory(BoundedModel):
    regions: list[RegionIn] = Field(min_length=1, max_length=REGIONS_MAX)
    nodes: list[NodeIn] = Field(min_length=1, max_length=NODES_MAX)


class Health(BoundedModel):
    ok: bool = True
    detail: str = Field("", max_length=256)
    #: Workers' attempts the agent drives now.
    running: int = Field(0, ge=0, le=10**6)
    #: How its workers are isolated (the local backend's sandbox), in a few words.
    sandbox: str = Field("", max_length=256)


class RegisterIn(BoundedModel):
    cluster: ClusterName
    inventory: Inventory
    #: Who the agent is (host, pid), for the operator; not trusted for anything.
    agent: str = Field("", max_length=256)
    health: Health = Field(default_factory=Health)


class RegisterOut(BaseModel):
    cluster: str
    epoch: int
    lease_s: float
    poll_s: float


class LogChunk(BoundedModel):
    rank: int = Field(ge=0, le=4095)
    offset: int = Field(ge=0, le=2**62)
    data: str = Field(max_length=LOG_CHUNK_MAX)


ReportState = Literal["running", "exited", "lost", "refused", "failed", "stopped"]


class Report(BoundedModel):
    id: AttemptId
    state: ReportState
    rc: int | None = Field(None, ge=-255, le=255)
    at: float | None = Field(None, ge=0, le=1e11)
    reason: str = Field("", max_length=1000)
    logs: list[LogChunk] = Field(default_factory=list, max_length=LOG_CHUNKS_MAX)


class HeartbeatIn(BoundedModel):
    cluster: ClusterName
    epoch: int = Field(ge=1, le=2**31 - 1)
    reports: list[Report] = Field(default_factory=list, max_length=REPORTS_MAX)
    #: Every attempt the agent drives now (the control plane stops those it does not know).
    attempts: list[AttemptId] = Field(default_factory=list, max_length=REPORTS_MAX)
    health: Health = Field(default_factory=Health)
    #: Wait up to this long for a command when there is none (long poll).
    wait_s: float = Field(0.0, ge=0.0, le=5.0)
    #: The agent is stopping: every worker is gone; end the session now (no new work).
    leaving: bool = False


class DatasetOut(BaseModel):
    name: str
    data_class: str = "general"
    origin: str = ""
    stored_in: str = ""
    size_gb: float = 0.0
    persons: int | None = None
    anonymised: bool = False
    handler: str = ""


class ApprovalOut(BaseModel):
    id: str
    kind: str
    handler: str = "*"
    origin: str = "*"
    data_class: str = "*"
    to: list[str] = Field(default_factory=lambda: ["*"])
    datasets: list[str] = Field(default_factory=list)
    valid_from: float | None = None
    expires: float | None = None


class Ticket(BaseModel):
    """The control plane's residency verdict for one start, travelling with it: the agent
    judges again with the same code and its own region data before it starts anything."""

    region: str
    jurisdiction: str
    allowed: bool
    rules: list[str] = Field(default_factory=list)
    reason: str = ""
    datasets: list[DatasetOut] = Field(default_factory=list)
    #: Approvals the verdict relied on (the agent judges with these only).
    approvals: list[ApprovalOut] = Field(default_factory=list)
    #: When the verdict was given (approvals are judged at this time).
    at: float = 0.0


class StartCmd(BaseModel):
    id: str
    job_id: int
    key: str
    attempt: int
    tenant: str = ""
    tenant_id: int = -1
    argv: list[str]
    env: list[tuple[str, str]] = Field(default_factory=list)
    workdir: str | None = None
    datasets: list[str] = Field(default_factory=list)
    limits: list[tuple[str, int]] = Field(default_factory=list)
    flavor: str
    #: (node name, device indices) per worker, rank order.
    workers: list[tuple[str, list[int]]]
    delay_s: float = 0.0
    residency: Ticket | None = None


class StopCmd(BaseModel):
    id: str
    reason: str = "preempted"


class HeartbeatOut(BaseModel):
    lease_s: float
    poll_s: float
    start: list[StartCmd] = Field(default_factory=list)
    stop: list[StopCmd] = Field(default_factory=list)


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
