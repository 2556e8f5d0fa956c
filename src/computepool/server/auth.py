"""Who is calling: a bearer token -> its ``Principal``, read from the store on every request.

No cache: a token revoked by ``cpool admin token revoke`` (another process, straight to the
store) or by ``DELETE /v1/tokens/{id}`` is refused from the very next request. The lookup is
one indexed query through SQLAlchemy Core (no ORM session): tens of microseconds on SQLite.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine

from computepool.server.db import TenantRow, TokenRow
from computepool.server.store import Principal, hash_token

_BY_HASH = (
    select(TokenRow.id, TokenRow.role, TokenRow.tenant_id, TenantRow.name)
    .outerjoin(TenantRow, TokenRow.tenant_id == TenantRow.id)
    .where(TokenRow.token_hash == bindparam("digest"), TokenRow.revoked_at.is_(None))
)
#: Longer than any token this server hands out (``cpool_`` + 43 characters).
TOKEN_MAX = 256


def principal_for_token(engine: Engine, token: str) -> Principal | None:
    """The active token's principal, or None (unknown, revoked, or not a token at all)."""
    if not token or len(token) > TOKEN_MAX or "\x00" in token:
        return None
    with engine.connect() as conn:
        row = conn.execute(_BY_HASH, {"digest": hash_token(token)}).first()
    if row is None:
        return None
    token_id, role, tenant_id, tenant = row
    return Principal(int(token_id), str(role), tenant_id, tenant)
