"""One writer per store: a lease row in the database, renewed by the server that holds it.

A server takes the ``writer`` lease before it reconciles or schedules anything. The lease is
a row in ``store_leases`` (holder id, host, pid, since, expires_at, epoch); the holder renews
it every few seconds and before each round's writes. Another server takes it over only when

- it has expired (the holder stopped renewing: crashed, hung, or paused past its expiry), or
- the holder is provably dead: it ran on this very machine (same boot and PID namespace) and
  its process is gone (a ``kill -9`` followed by a restart need not wait for the expiry).

Every change is a compare-and-swap on (holder, epoch) in one UPDATE, so it works alike on
SQLite and PostgreSQL and two servers cannot both win. The epoch goes up at every take-over.

Fencing: a holder that finds the row no longer its own (``LeaseLost``) must stop scheduling
and write nothing more; the caller decides how to exit. A standby waits for the lease instead
of refusing (``acquire(wait=True)``; docs/ha.md).

Besides the row, the holder keeps a deadline of its own on the monotonic clock: the moment it
sent its last successful renewal plus the time to live. Another server can take the lease only
after ``expires_at``, which is later than that deadline; so a holder that acts on the cluster
only while ``fresh()`` (more than a third of the time to live left) never acts after a
take-over, even when it was paused (SIGSTOP, a VM freeze) between a renewal and the act. The
monotonic clock keeps running while a process is stopped.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from computepool.server.db import LeaseRow, limit_idle

log = logging.getLogger("computepool.server")

WRITER = "writer"
DEFAULT_TTL_S = 15.0


def store_label(url: str) -> str:
    """The store's URL as a message may show it (no password)."""
    return make_url(url).render_as_string(hide_password=True)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Holder:
    holder: str
    host: str
    pid: int
    machine: str
    since: float
    expires_at: float
    epoch: int

    @classmethod
    def of(cls, row: LeaseRow) -> Holder:
        return cls(row.holder, row.host, row.pid, row.machine, row.since, row.expires_at, row.epoch)

    def describe(self, now: float) -> str:
        left = self.expires_at - now
        when = f"expires in {left:.0f} s" if left > 0 else f"expired {max(-left, 0.0):.0f} s ago"
        return f"host {self.host} pid {self.pid} since {_iso(self.since)} (lease {when})"


class LeaseHeld(RuntimeError):
    """Another server writes to this store."""

    def __init__(self, store: str, holder: Holder, now: float) -> None:
        self.store, self.holder = store, holder
        super().__init__(
            f"store {store} is already served by {holder.describe(now)}; one server writes "
            "to a store at a time: stop that server, or start this one when its lease has "
            "expired"
        )


class LeaseLost(RuntimeError):
    """This server no longer holds the store's lease: it must stop writing."""

    def __init__(self, store: str, holder: Holder | None, now: float, why: str = "") -> None:
        who = "nobody" if holder is None else holder.describe(now)
        what = why or f"lost the writer lease of store {store} (now held by {who})"
        super().__init__(f"{what}; this server stops scheduling and writes nothing more")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    stat = _read(f"/proc/{pid}/stat")
    rest = stat.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else ""


def machine_identity(pid: int | None = None) -> str:
    """Boot id, PID namespace and process start of ``pid`` (this process by default); "" where
    /proc does not tell (then a holder is never presumed dead before its lease expires)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    start = _start_ticks(os.getpid() if pid is None else pid)
    return f"{boot}|{ns}|{start}" if boot and ns and start else ""


def holder_dead(h: Holder) -> bool:
    """True only when ``h`` ran on this machine (same boot, same PID namespace) and its
    process is gone (no such pid, a zombie, or another process that reused the pid)."""
    mine = machine_identity()
    if not mine or not h.machine:
        return False
    boot, ns, _ = mine.split("|")
    hb, hns, hstart = h.machine.split("|") if h.machine.count("|") == 2 else ("", "", "")
    if (hb, hns) != (boot, ns):
        return False
    try:
        os.kill(h.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists (another user's)
        pass
    stat = _read(f"/proc/{h.pid}/stat")
    if not stat:  # hidden from us: presume it alive
        return False
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return state == ["Z"] or _start_ticks(h.pid) != hstart


class StoreLease:
    """The writer lease of one store, as one server holds (or tries to hold) it."""

    def __init__(
        self,
        sessions: sessionmaker,
        store: str,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
        name: str = WRITER,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("the lease's time to live must be > 0 seconds")
        self.sessions, self.store, self.ttl_s, self.clock, self.name = (
            sessions, store, ttl_s, clock, name,
        )  # fmt: skip
        self.holder_id = uuid.uuid4().hex
        self.epoch: int | None = None
        self.since = 0.0
        #: Set once the lease is found lost; nothing may be written after that.
        self.lost: LeaseLost | None = None
        #: Monotonic time until which the lease is surely still ours (see the module's doc).
        self.valid_until = -math.inf

    @property
    def held(self) -> bool:
        return self.epoch is not None and self.lost is None

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3.0

    def fresh(self) -> bool:
        """Held, with more than a third of its time to live surely left (monotonic clock)."""
        return self.held and time.monotonic() < self.valid_until - self.ttl_s / 3.0

    def current(self) -> Holder | None:
        with self.sessions() as s:
            row = s.get(LeaseRow, self.name)
            return None if row is None else Holder.of(row)

    def _mine(self, now: float) -> dict:
        return {
            "holder": self.holder_id,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "machine": machine_identity(),
            "since": now,
            "renewed_at": now,
            "expires_at": now + self.ttl_s,
        }

    def try_acquire(self) -> Holder | None:
        """Take the lease if it is free, expired or its holder is dead; None when taken,
        else the holder that keeps it."""
        now, sent = self.clock(), time.monotonic()
        mine = self._mine(now)
        with self.sessions() as s:
            row = s.get(LeaseRow, self.name)
            if row is None:
                s.add(LeaseRow(name=self.name, epoch=1, **mine))
                try:
                    s.commit()
                except IntegrityError:  # another server inserted it first
                    s.rollback()
                    return self.current()
                return self._took(1, now, None, sent)
            old = Holder.of(row)
            cond = [LeaseRow.name == self.name, LeaseRow.holder == old.holder,
                    LeaseRow.epoch == old.epoch]  # fmt: skip
            if old.holder == self.holder_id:
                pass
            elif old.expires_at <= now:
                cond.append(LeaseRow.expires_at <= now)  # not renewed meanwhile
            elif not holder_dead(old):
                return old
            n = s.execute(update(LeaseRow).where(*cond).values(epoch=old.epoch + 1, **mine))
            s.commit()
            if n.rowcount != 1:
                return self.current()
            return self._took(old.epoch + 1, now, old, sent)

    def _took(self, epoch: int, now: float, old: Holder | None, sent: float) -> None:
        self.epoch, self.since, self.lost = epoch, now, None
        self.valid_until = sent + self.ttl_s
        if old is not None and old.holder != self.holder_id:
            log.warning(
                "took over the writer lease",
                extra={"fields": {"store": self.store, "from": old.describe(now), "epoch": epoch}},
            )
        return None

    def acquire(self, wait: bool = False, stop: threading.Event | None = None) -> None:
        """Take the lease or raise ``LeaseHeld``; ``wait``: retry until it is free (standby)."""
        announced = False
        while True:
            holder = self.try_acquire()
            if holder is None:
                return
            if not wait:
                raise LeaseHeld(self.store, holder, self.clock())
            if not announced:
                log.info(
                    "standby: waiting for the writer lease",
                    extra={
                        "fields": {"store": self.store, "holder": holder.describe(self.clock())}
                    },
                )
                announced = True
            delay = min(self.renew_every_s, max(holder.expires_at - self.clock(), 0.05))
            if stop is not None and stop.wait(delay):
                raise LeaseHeld(self.store, holder, self.clock())
            if stop is None:
                time.sleep(delay)

    def fence(self, s: Session) -> float:
        """Renew the lease in ``s``'s transaction, or raise ``LeaseLost`` (the transaction is
        then the caller's to roll back); returns when (monotonic) the renewal was sent. Put
        first in a transaction that writes, it makes the writes conditional on still holding
        the lease (PostgreSQL: the lease row stays locked until commit, so no take-over can
        slip in between)."""
        if self.lost is not None:
            raise self.lost
        if self.epoch is None:
            raise LeaseLost(self.store, self.current(), self.clock())
        now, sent = self.clock(), time.monotonic()
        limit_idle(s, self.ttl_s)  # paused holding the row's lock: cut off, not blocking
        n = s.execute(
            update(LeaseRow)
            .where(
                LeaseRow.name == self.name,
                LeaseRow.holder == self.holder_id,
                LeaseRow.epoch == self.epoch,
            )
            .values(renewed_at=now, expires_at=now + self.ttl_s)
        )
        if n.rowcount == 1:
            return sent
        row = s.scalars(select(LeaseRow).where(LeaseRow.name == self.name)).first()
        self.lost = LeaseLost(self.store, None if row is None else Holder.of(row), now)
        raise self.lost

    def renew(self) -> None:
        """Renew in a transaction of its own; ``LeaseLost`` when another server has it."""
        with self.sessions() as s:
            try:
                sent = self.fence(s)
            except LeaseLost:
                s.rollback()
                raise
            s.commit()
        # surely ours until then: a take-over waits for expires_at, which is later
        self.valid_until = max(self.valid_until, sent + self.ttl_s)

    def release(self) -> None:
        """Let the next server take over at once (the row stays, with its epoch)."""
        if not self.held:
            return
        now = self.clock()
        with self.sessions() as s:
            s.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == self.name,
                    LeaseRow.holder == self.holder_id,
                    LeaseRow.epoch == self.epoch,
                )
                .values(expires_at=now)
            )
            s.commit()
        self.epoch, self.valid_until = None, -math.inf
