"""Request and response bodies of the REST API (pydantic at the edge only)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from computepool import bounds as B
from computepool.bounds import BoundedModel
from computepool.model.accelerator import STACKS
from computepool.model.dataset_spec import DatasetSpec
from computepool.model.field_names import DEPRECATED, deprecation
from computepool.model.job import JobKind

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Name = Annotated[str, Field(max_length=B.NAME_MAX)]
Short = Annotated[str, Field(max_length=B.SHORT_MAX)]
Shell = Annotated[str, Field(max_length=B.COMMAND_MAX)]
Argv = Annotated[
    list[Annotated[str, Field(max_length=B.ARGV_ITEM_MAX)]],
    Field(min_length=1, max_length=B.ARGV_MAX_ITEMS),
]
EnvName = Annotated[str, Field(max_length=B.ENV_NAME_MAX)]
EnvValue = Annotated[str, Field(max_length=B.ENV_VALUE_MAX)]


def idempotency_key_error(key: str) -> str | None:
    """Why ``key`` is not a usable idempotency key (header or body), or None."""
    if not key.strip():
        return "must not be empty"
    if len(key) > B.IDEMPOTENCY_KEY_MAX:
        return f"must be at most {B.IDEMPOTENCY_KEY_MAX} characters"
    if _CONTROL.search(key):
        return "must not contain control characters"
    return B.bad_char(key)


class WorkerLimits(BoundedModel):
    """Per-worker limits a job asks for (enforced with cgroup v2 or rlimits: see
    docs/security.md); the pool's own limits cap them."""

    memory_gib: float | None = Field(None, gt=0, le=65536, description="Address space.")
    cpu_seconds: int | None = Field(None, ge=1, le=10**9, description="CPU time per process.")
    pids: int | None = Field(None, ge=1, le=1 << 22, description="Processes of the tenant.")
    file_size_gib: float | None = Field(None, gt=0, le=1 << 20, description="Largest file.")


class JobSpec(BoundedModel):
    """A job as a tenant submits it (``cpool submit JOB.yaml`` sends this). The old spellings
    of three fields (``accel_per_worker``, ``accelerators`` as a list of types,
    ``total_steps``) are read as their new names, with a deprecation in ``warnings``."""

    _deprecated: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _old_names(cls, data: Any, handler: Any) -> Any:
        names: list[str] = []
        if isinstance(data, dict):
            names = [
                k
                for k in DEPRECATED
                if k in data and (k != "accelerators" or isinstance(data[k], list))
            ]
            if names:
                data = dict(data)
                for old in names:
                    new = DEPRECATED[old]
                    if new in data:
                        raise ValueError(f"give {new} or {old}, not both (they are one field)")
                    data[new] = data.pop(old)
        spec = handler(data)
        spec._deprecated = names
        return spec

    @property
    def warnings(self) -> list[str]:
        """Deprecations of the submitted job (the old field names it used)."""
        return [deprecation("job file", self._deprecated)] if self._deprecated else []

    name: Name = ""
    command: Shell | Argv = Field(
        description="A shell command line (run with /bin/sh -c) or an argv list."
    )
    workers: int = Field(1, ge=1, le=4096)
    accelerators_per_worker: int = Field(1, ge=1, le=64)
    accelerator_types: list[Short] = Field(
        default_factory=list,
        max_length=B.ACCELERATOR_TYPES_MAX,
        description="Accelerator types the job may use; empty: any.",
    )
    stacks: list[Short] = Field(
        default_factory=list, max_length=B.STACKS_MAX, description=f"Any of {', '.join(STACKS)}."
    )
    kind: JobKind = JobKind.TRAIN
    job_type: Short = "generic"
    work: float = Field(
        3600.0,
        gt=0,
        le=B.WORK_MAX,
        description="Estimated work (H100-seconds for the generic job type).",
    )
    priority: int = Field(0, ge=-1000, le=1000)
    max_hours: float | None = Field(
        None, gt=0, le=8760, description="Time limit: hours the job may hold its accelerators, "
        "all attempts together; it is stopped (failed, 'time limit') there. Default: the "
        "tenant's; a tenant with a budget reserves accelerators x max_hours at submission.",
    )  # fmt: skip
    weight: float = Field(1.0, gt=0, le=1000)
    preemptible: bool = Field(
        True, description="False: once running, neither the policy nor a service preempts it."
    )
    deadline_hours: float | None = Field(
        None, gt=0, le=87600, description="Soft deadline, hours after submission (cost policies)."
    )
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=B.ENV_MAX_VARS)
    workdir: str | None = Field(
        None,
        max_length=B.WORKDIR_MAX_BYTES,
        description="Absolute path the workers start in (checked to exist when the job starts).",
    )
    datasets: list[DatasetSpec] = Field(default_factory=list, max_length=B.DATASETS_MAX)
    limits: WorkerLimits | None = None
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=B.IDEMPOTENCY_KEY_MAX,
        description="Or the Idempotency-Key header.",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be empty")
        if isinstance(v, list):
            if not all(v):
                raise ValueError("must be a non-empty list of non-empty strings")
            if sum(len(a) for a in v) > B.COMMAND_MAX:
                raise ValueError(f"argv items must total at most {B.COMMAND_MAX} characters")
        return v

    @field_validator("idempotency_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        why = None if v is None else idempotency_key_error(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("stacks")
    @classmethod
    def _stacks(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in STACKS]
        if bad:
            raise ValueError(f"unknown stack {bad[0]!r}; known: {', '.join(STACKS)}")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not _ENV_NAME.match(k):
                raise ValueError(f"{k!r} is not a valid environment variable name")
            if k.startswith("CPOOL_"):
                raise ValueError(f"{k!r}: CPOOL_* variables are set by the pool")
        if sum(len(k) + len(x) for k, x in v.items()) > B.ENV_TOTAL_MAX:
            raise ValueError(f"names and values must total at most {B.ENV_TOTAL_MAX} characters")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str | None) -> str | None:
        why = None if v is None else B.workdir_error(v)
        if why:
            raise ValueError(why)
        return v

    @property
    def accelerators(self) -> int:
        return self.workers * self.accelerators_per_worker

    def argv(self) -> tuple[str, ...]:
        return (
            ("/bin/sh", "-c", self.command)
            if isinstance(self.command, str)
            else tuple(self.command)
        )


def iso(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class JobOut(BaseModel):
    id: int
    tenant: str
    name: str
    status: str
    accelerators: int
    flavor: str | None
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reason: str
    exit_code: int | None
    attempts: int
    preemptions: int
    cancel_requested: bool
    spec: dict[str, Any] | None = None


class JobList(BaseModel):
    jobs: list[JobOut]


class EventOut(BaseModel):
    at: datetime
    kind: str
    detail: str


class AllocationOut(BaseModel):
    attempt: int
    flavor: str
    accelerators: int
    workers: list[Any]
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class PendingReason(BaseModel):
    """Why a waiting job waits after the scheduler's last round."""

    code: str = Field(description="unschedulable (may run later) or unresolvable.")
    source: str = Field(
        description="What held it back: quota:TENANT, budget:TENANT, placement, check, "
        "capacity, policy:NAME."
    )
    reason: str


class JobDetail(JobOut):
    events: list[EventOut]
    allocations: list[AllocationOut]
    pending_reason: PendingReason | None = Field(
        None, description="Why it waits (queued or admitted jobs the scheduler holds back)."
    )


class UsageRow(BaseModel):
    tenant: str
    flavor: str
    accelerator_hours: float
    energy_kwh: float
    cost_usd: float
    carbon_kg: float
    jobs: int


class TokenUsageOut(BaseModel):
    """Tokens through the OpenAI-compatible gateway, per tenant, service and model."""

    tenant: str
    service: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    #: Requests whose tokens the gateway counted itself (the replica reported no usage).
    estimated_requests: int = 0
    cost_usd: float


class UsageOut(BaseModel):
    since: datetime | None
    until: datetime
    rows: list[UsageRow]
    total: UsageRow
    tokens: list[TokenUsageOut] = Field(default_factory=list)


class QuotaIn(BoundedModel):
    nominal: float = Field(0.0, ge=0, le=B.QUOTA_MAX)
    borrowing_limit: float | None = Field(None, ge=0, le=B.QUOTA_MAX)
    lending_limit: float | None = Field(None, ge=0, le=B.QUOTA_MAX)


class TenantIn(BoundedModel):
    name: Short
    weight: float = Field(1.0, gt=0, le=1000)
    cohort: Short = ""
    quotas: dict[Name, QuotaIn] = Field(
        default_factory=dict,
        max_length=B.QUOTA_KEYS_MAX,
        description="Flavor (region/accel), accelerator type, or '*'.",
    )
    budget_accel_hours: float | None = Field(None, ge=0, le=B.MONEY_MAX)
    budget_usd: float | None = Field(None, ge=0, le=B.MONEY_MAX)

    # isolation and limits (docs/security.md)
    default_max_hours: float | None = Field(
        None, gt=0, le=8760, description="Time limit of its jobs that give no max_hours."
    )
    # the OpenAI-compatible gateway (docs/serving.md); None: the server's default
    requests_per_s: float | None = Field(
        None, gt=0, le=1e6, description="Gateway requests a second (token bucket)."
    )
    tokens_per_min: float | None = Field(
        None, gt=0, le=1e12, description="Gateway tokens (prompt + completion) a minute."
    )
    handlers: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        None, max_length=64, description="Data handlers (controllers) it owns besides its own "
        "name: its datasets may name them, and approvals scoped to them serve it alone. "
        "None: keep those on record.",
    )  # fmt: skip

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TENANT_NAME.match(v):
            raise ValueError("use 1-63 lowercase letters, digits, '-', '_' or '.'")
        return v


class TenantOut(TenantIn):
    created_at: datetime


class TokenOut(BaseModel):
    id: int
    tenant: str | None
    role: str
    token: str = Field(description="Shown once; only its hash is stored.")


class ErrorItem(BaseModel):
    field: str
    reason: str


class ErrorOut(BaseModel):
    error: str
    errors: list[ErrorItem] = []
