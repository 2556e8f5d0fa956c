"""Who is calling: a bearer token -> its ``Principal``, read from the store on every request.

No cache: a token revoked by ``cpool admin token revoke`` (another process, straight to the
store) or by ``DELETE /v1/tokens/{id}`` is refused from the very next request. The lookup is
one indexed query on a connection of its own (autocommit, behind a lock: a few tens of
microseconds on SQLite), so it takes nothing from the pool the request handlers share.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

from sqlalchemy.engine import Engine

from computepool.server.store import Principal, hash_token

#: Longer than any token this server hands out (``cpool_`` + 43 characters).
TOKEN_MAX = 256
_SQL = (
    "SELECT t.id, t.role, t.tenant_id, n.name FROM api_tokens t "
    "LEFT OUTER JOIN tenants n ON t.tenant_id = n.id "
    "WHERE t.token_hash = {p} AND t.revoked_at IS NULL"
)
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class TokenLookup:
    """The active token's principal, from the store, on dedicated DBAPI connections (a few,
    so that lookups of concurrent requests need not wait for each other's round trips)."""

    def __init__(self, engine: Engine, connections: int = 4) -> None:
        mark = _MARKS.get(engine.dialect.paramstyle)
        if mark is None:
            raise ValueError(f"unsupported DBAPI paramstyle {engine.dialect.paramstyle!r}")
        self.engine, self.sql = engine, _SQL.format(p=mark)
        # SQLite answers from a local file in microseconds: one connection is enough
        self.size = 1 if engine.dialect.name == "sqlite" else max(1, connections)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self._slots = threading.BoundedSemaphore(self.size)

    @property
    def remote(self) -> bool:
        """A lookup is a network round trip (worth moving off the event loop)."""
        return self.engine.dialect.name != "sqlite"

    def _connect(self) -> Any:
        proxied = self.engine.raw_connection()
        proxied.detach()  # ours until closed: never returned to the pool in autocommit
        driver = proxied.driver_connection
        if hasattr(driver, "autocommit"):
            driver.rollback()  # (a pre-ping may have opened one)
            driver.autocommit = True  # psycopg: no transaction left open between lookups
        elif hasattr(driver, "isolation_level"):
            driver.isolation_level = None  # sqlite3: autocommit
        with self._lock:
            self._open.append(proxied)
        return proxied

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    def __call__(self, token: str) -> Principal | None:
        if not token or len(token) > TOKEN_MAX or "\x00" in token:
            return None
        digest = hash_token(token)
        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = None
            for attempt in (1, 2):
                try:
                    if conn is None:
                        conn = self._connect()
                    cur = conn.cursor()
                    try:
                        cur.execute(self.sql, (digest,))
                        row = cur.fetchone()
                    finally:
                        cur.close()
                    break
                except self.engine.dialect.loaded_dbapi.Error:
                    if conn is not None:  # a dropped connection: open another, once
                        self._discard(conn)
                    conn = None
                    if attempt == 2:
                        raise
            self._idle.put(conn)
        if row is None:
            return None
        token_id, role, tenant_id, tenant = row
        return Principal(int(token_id), str(role), tenant_id, tenant)

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
