"""The live pool's store: SQLAlchemy 2 tables, the engine, and Alembic migrations.

SQLite (WAL, ``synchronous=NORMAL``) is the embedded default; a ``postgresql://`` URL uses
PostgreSQL through psycopg 3. Times are float seconds since the epoch (UTC) in both.
The schema is created and upgraded only by the Alembic migrations in ``server/migrations``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

FINAL = ("succeeded", "failed", "cancelled", "rejected")
ACTIVE = ("queued", "admitted", "running")


class Base(DeclarativeBase):
    pass


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    cohort: Mapped[str] = mapped_column(String(64), default="")
    #: flavor key -> {"nominal", "borrowing_limit", "lending_limit"}
    quotas: Mapped[dict] = mapped_column(JSON, default=dict)
    budget_accel_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    #: Time limit of a job that gives none (``max_hours``); a budgeted tenant's jobs need one.
    default_max_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Gateway rate limits (requests a second, tokens a minute); None: the server's default.
    requests_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens_per_min: Mapped[float | None] = mapped_column(Float, nullable=True)


class HandlerRow(Base):
    """A data handler (controller) a tenant owns: its datasets may name it, and approvals and
    person counters scoped to it serve that tenant only. A handler belongs to one tenant."""

    __tablename__ = "tenant_handlers"
    handler: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)


class LeaseRow(Base):
    """Who writes to this store (one writer): the holder renews ``expires_at`` every few
    seconds; another server takes the lease over only once it has expired."""

    __tablename__ = "store_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: Boot and PID-namespace identity of the holder's machine: a holder whose pid is gone
    #: on this very machine is known dead before its lease expires.
    machine: Mapped[str] = mapped_column(String(255), default="")
    since: Mapped[float] = mapped_column(Float)
    renewed_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    #: Bumped at every take-over: a fencing token.
    epoch: Mapped[int] = mapped_column(Integer, default=1)


class TokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))  # "tenant" | "admin"
    name: Mapped[str] = mapped_column(String(64), default="")
    #: sha256 of the token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ClusterRow(Base):
    """A cluster whose agent may join the federation (``cpool agent``): its token's hash
    (the token is shown once), the epoch of its agent's newest registration (a fencing
    token: reports of an older epoch are refused) and what its agent last said."""

    __tablename__ = "clusters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    registered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Regions and node names its agent reported at its last registration.
    inventory: Mapped[dict] = mapped_column(JSON, default=dict)


class JobRow(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict] = mapped_column(JSON)
    accelerators: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    submitted_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    flavor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Seconds it may hold its accelerators, all attempts together (``max_hours`` or its tenant's
    #: default); the scheduler stops it there. None: no limit.
    time_limit_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Budget reserved at submission (accelerators x time limit; x the dearest price it may
    #: run at): counted instead of its use while it is not finished.
    reserved_accel_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    reserved_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        Index("ix_jobs_status_id", "status", "id"),
        # each round asks for open cancel requests: rare, so an index makes it cheap
        Index("ix_jobs_cancel_status", "cancel_requested", "status"),
        # the dashboard: jobs by flavor, and per tenant by status (migration 0002)
        Index("ix_jobs_flavor_id", "flavor", "id"),
        Index("ix_jobs_tenant_status", "tenant_id", "status"),
    )


class JobEventRow(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")


class AllocationRow(Base):
    """One placement interval: a job's workers held slots of one flavor from start to end."""

    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(128))
    accelerators: Mapped[int] = mapped_column(Integer)
    #: [[node, [device, ...]], ...] per worker rank
    workers: Mapped[list] = mapped_column(JSON)
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Data copied in before the workers started (residency: a remote read is a transfer):
    #: GB, seconds the start waited, egress charged (added to the interval's ledger cost).
    transfer_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    transfer_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    egress_usd: Mapped[float | None] = mapped_column(Float, nullable=True)


class LedgerRow(Base):
    """Metering: one entry per job per placement interval."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id"), unique=True)
    flavor: Mapped[str] = mapped_column(String(128))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    accel_seconds: Mapped[float] = mapped_column(Float)
    energy_kwh: Mapped[float] = mapped_column(Float)
    cost_usd: Mapped[float] = mapped_column(Float)
    carbon_kg: Mapped[float] = mapped_column(Float)
    #: Part of ``cost_usd`` that is egress for data copied in at the start.
    egress_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (
        Index("ix_ledger_tenant_end", "tenant_id", "end"),
        Index("ix_ledger_end", "end"),  # the dashboard's cost charts (migration 0002)
    )


class TokenUsageRow(Base):
    """Gateway metering: tokens one tenant used on one service over a short interval (the
    gateway adds requests up in memory and writes one row per key every second or so)."""

    __tablename__ = "token_usage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    #: The served model name (the service) and the model it runs (e.g. qwen2.5-7b).
    service: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    #: Requests whose tokens were counted by the gateway (the upstream reported no usage).
    estimated: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        Index("ix_token_usage_tenant_end", "tenant_id", "end"),
        Index("ix_token_usage_end", "end"),
    )


class AuditRow(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    # the dashboard's residency audit: by actor, and one job's decisions (migration 0002)
    __table_args__ = (
        Index("ix_audit_actor_id", "actor", "id"),
        Index("ix_audit_target", "target"),
    )


class ApprovalRow(Base):
    """A residency approval on record (security assessment, standard contract, consent, ...).

    Revoking keeps the row (``revoked_at``): the audit needs what was on record when."""

    __tablename__ = "residency_approvals"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    handler: Mapped[str] = mapped_column(String(128), default="*")
    origin: Mapped[str] = mapped_column(String(32), default="*")
    data_class: Mapped[str] = mapped_column(String(128), default="*")
    #: Destination jurisdictions it covers.
    to: Mapped[list] = mapped_column(JSON, default=list)
    #: Dataset names it covers; empty: every dataset in its scope.
    datasets: Mapped[list] = mapped_column(JSON, default=list)
    valid_from: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ExportRow(Base):
    """A dataset counted on a per-calendar-year person counter (handler, origin, counter).

    The residency check's thresholds (e.g. CN-5: fewer than 100,000 persons a year) read
    these; they survive a restart of the server."""

    __tablename__ = "residency_exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handler: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(32))
    counter: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(256))
    persons: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __table_args__ = (
        UniqueConstraint(
            "handler", "origin", "counter", "year", "dataset", name="uq_residency_exports_key"
        ),
    )


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3; ``sqlite:///path`` stays as it is."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # pragma: no cover - exercised by every test
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def limit_idle(s: Session, seconds: float) -> None:
    """PostgreSQL: the server ends this session should this transaction sit idle for longer
    than ``seconds``, so that a process paused or hung while it holds row locks (the writer
    lease's, a tenant's) does not block the other servers for good."""
    if s.get_bind().dialect.name == "postgresql":
        ms = max(int(seconds * 1000), 1)
        s.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {ms}"))


def sessions(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (creates it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("computepool.server") / "migrations")
    )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
