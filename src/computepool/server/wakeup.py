"""Wake the leader when another server stores a submission or a cancel request.

Every server writes submissions and cancel requests straight to the store; the leader reads
them at its next round. On PostgreSQL the writing transaction also sends a notification
(``pg_notify``, delivered at commit), and the leader listens for it (``LISTEN``), so a job
submitted through a standby is scheduled as soon as one submitted through the leader, not a
round later. On SQLite (one server) a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

log = logging.getLogger("computepool.server")

CHANNEL = "cpool_wake"


def notify(s: Session) -> None:
    """In ``s``'s transaction: wake the leader when it commits (PostgreSQL only)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})


def listen(engine: Engine, wake: Callable[[], None], stop: threading.Event) -> None:
    """Call ``wake`` on every notification until ``stop`` is set (the leader's thread); a
    lost connection is opened again a second later."""
    if engine.dialect.name != "postgresql":
        return
    while not stop.is_set():
        raw = None
        try:
            raw = engine.raw_connection()
            conn = raw.driver_connection
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                for _ in conn.notifies(timeout=1.0):
                    wake()
        except Exception:  # the store went away for a moment: rounds still run on time
            log.warning("listening for submissions of other servers failed", exc_info=True)
            stop.wait(1.0)
        finally:
            if raw is not None:
                raw.invalidate()  # a connection that listens goes back to no pool
