"""Who is calling: a bearer token -> its ``Principal``, read from the store on every request.

No cache: a token revoked by ``cpool admin token revoke`` (another process, straight to the
store) or by ``DELETE /v1/tokens/{id}`` is refused from the very next request. The lookup is
one indexed query on a connection of its own (autocommit, behind a lock: a few tens of
microseconds on SQLite), so it takes nothing from the pool the request handlers share.
"""

from __future__ import annotations

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
    """The active token's principal, from the store, on one dedicated DBAPI connection."""

    def __init__(self, engine: Engine) -> None:
        mark = _MARKS.get(engine.dialect.paramstyle)
        if mark is None:
            raise ValueError(f"unsupported DBAPI paramstyle {engine.dialect.paramstyle!r}")
        self.engine, self.sql = engine, _SQL.format(p=mark)
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connect(self) -> Any:
        proxied = self.engine.raw_connection()
        proxied.detach()  # ours until closed: never returned to the pool in autocommit
        driver = proxied.driver_connection
        if hasattr(driver, "autocommit"):
            driver.rollback()  # (a pre-ping may have opened one)
            driver.autocommit = True  # psycopg: no transaction left open between lookups
        elif hasattr(driver, "isolation_level"):
            driver.isolation_level = None  # sqlite3: autocommit
        return proxied

    def __call__(self, token: str) -> Principal | None:
        if not token or len(token) > TOKEN_MAX or "\x00" in token:
            return None
        digest = hash_token(token)
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    cur = self._conn.cursor()
                    try:
                        cur.execute(self.sql, (digest,))
                        row = cur.fetchone()
                    finally:
                        cur.close()
                    break
                except self.engine.dialect.loaded_dbapi.Error:
                    self.close()  # a dropped connection: open another, once
                    if attempt == 2:
                        raise
        if row is None:
            return None
        token_id, role, tenant_id, tenant = row
        return Principal(int(token_id), str(role), tenant_id, tenant)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
