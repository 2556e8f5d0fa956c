"""Several servers on one store: the leader acts on the cluster, standbys serve the API.

Every ``cpool serve --standby`` on a PostgreSQL store serves the API and the dashboard; the
one that holds the store's writer lease (``server/lease.py``) also reconciles and schedules.
A standby writes only what a request writes (submissions, cancel requests, tenants, tokens,
approvals); the leader reads new and changed rows from the store every round. When the lease
comes free (the leader exited, was killed, or stopped renewing past its time to live), a
standby takes it, recovers from the store and the backend (``server/recovery.py``: running
workers are adopted) and leads. See docs/ha.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from computepool.scheduler.interfaces import Observation, RoundPlan
from computepool.server.lease import Holder, machine_identity

LEADER, STANDBY = "leader", "standby"


class FencedCluster:
    """The backend as the scheduler drives it: nothing is started, stopped or spawned unless
    this server surely still holds the lease (``ensure`` renews it or raises ``LeaseLost``).

    A leader paused past its lease (SIGSTOP, a frozen VM) and resumed mid-round then finds
    the lease lost before its next act on the cluster, instead of starting a job the new
    leader has already started or adopted. Everything else is the backend's own."""

    def __init__(self, inner: Any, ensure: Callable[[], None]) -> None:
        self._inner, self._ensure = inner, ensure

    def apply(self, plan: RoundPlan) -> Any:
        self._ensure()
        return self._inner.apply(plan)  # an ``Applied`` (starts it could not do) or None

    def observe(self, now: float) -> Observation:
        self._ensure()  # the local backend spawns delayed starts while it observes
        return self._inner.observe(now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def standby_refusal(db_url: str) -> str | None:
    """Why ``--standby`` cannot run on this store, or None."""
    if make_url(db_url).get_backend_name() == "sqlite":
        return (
            f"--standby: the store {db_url} is an SQLite file, which one server serves alone; "
            "several servers (a leader and standbys) need a PostgreSQL store "
            "(--db postgresql://USER@HOST:PORT/DB)"
        )
    return None


def foreign_holder(holder: Holder | None) -> str | None:
    """Why a local-backend standby must not wait behind ``holder``, or None.

    The local backend's workers are processes on the leader's machine; a standby elsewhere
    cannot see (adopt) them and would start their jobs a second time."""
    if holder is None or not holder.machine:
        return None
    mine = machine_identity()
    if not mine or holder.machine.split("|")[:2] == mine.split("|")[:2]:
        return None
    return (
        f"the store's leader runs on another machine (host {holder.host}); with the local "
        "backend a standby must run on the leader's machine with the same --data-dir, where "
        "it can adopt the running workers (docs/ha.md)"
    )
