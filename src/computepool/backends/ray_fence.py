"""The writer epoch on record in a Ray cluster: the worker-side fence of the Ray backend.

The local backend keeps the epoch of the leader that holds the store's writer lease in a file
of its data directory (``writer-epoch``); the Ray backend keeps it in the cluster itself, in
Ray's internal key-value store (held by the GCS, seen by every node), so a ``RayWorker`` on
any node can check it before its command starts.

One key per epoch a leader took (``writer-epoch/<scope>/<epoch>``, written once, never
overwritten or removed): the epoch on record is the largest, so two leaders that write at
once can never lower it, and a worker whose launching leader's epoch is older does not run.
``scope`` names the control plane's data directory (the attempt records adoption reads), so
control planes of different data directories sharing one Ray cluster do not fence each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Namespace of the keys in Ray's internal key-value store.
KV_NAMESPACE = "cpool"
PREFIX = "writer-epoch/"
#: Digits of an epoch in its key (keys sort as numbers).
WIDTH = 20


def fence_scope(root: Path) -> str:
    """The scope of a control plane's epochs: a digest of its data directory's path."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]


def epoch_key(scope: str, epoch: int) -> str:
    if not 0 <= epoch < 10**WIDTH:
        raise ValueError(f"writer epoch out of range: {epoch}")
    return f"{PREFIX}{scope}/{epoch:0{WIDTH}d}"


def epoch_of_keys(keys: list[bytes], scope: str) -> int | None:
    """The largest epoch among these keys of ``scope``; None: none of them."""
    head = f"{PREFIX}{scope}/".encode()
    found = [int(k[len(head) :]) for k in keys if k.startswith(head) and k[len(head) :].isdigit()]
    return max(found, default=None)


def epoch_on_record(scope: str) -> int | None:
    """The writer epoch on record in the connected Ray cluster (None: no leader wrote one)."""
    from ray.experimental.internal_kv import _internal_kv_list

    keys = _internal_kv_list(f"{PREFIX}{scope}/", namespace=KV_NAMESPACE)
    return epoch_of_keys(list(keys), scope)


def put_epoch(scope: str, epoch: int) -> None:
    """Put ``epoch`` on record: refused (RuntimeError) when a newer leader's is there."""
    from ray.experimental.internal_kv import _internal_kv_put

    on_record = epoch_on_record(scope)
    if on_record is not None and on_record > epoch:
        raise RuntimeError(f"a newer writer (epoch {on_record}) has taken this Ray cluster over")
    _internal_kv_put(epoch_key(scope, epoch), b"1", overwrite=False, namespace=KV_NAMESPACE)


def deposed(fence: tuple[str, int] | None) -> bool:
    """Whether a worker launched under ``fence`` (scope, launching leader's epoch) must not
    run: a newer leader has put its epoch on record since (and read the attempts then).
    Cannot tell (the GCS does not answer): do not run."""
    if fence is None:
        return False
    scope, epoch = fence
    try:
        on_record = epoch_on_record(scope)
    except Exception:
        return True
    return on_record is not None and on_record > epoch


# ---- an agent's lease, seen by its workers (``cpool agent --backend ray``) ---------------
#: The wall-clock time the workers of an agent's cluster must be gone by (its lease, less the
#: safety margin); no key: the agent holds no session, nothing may run.
LEASE_PREFIX = "agent-fence/"


def put_fence_at(scope: str, fence_at: float | None) -> None:
    """Put the agent's fence time (wall clock) on record; None: remove it."""
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

    key = LEASE_PREFIX + scope
    if fence_at is None:
        _internal_kv_del(key, namespace=KV_NAMESPACE)
    else:
        _internal_kv_put(key, f"{fence_at:.3f}".encode(), namespace=KV_NAMESPACE)


def lease_over(scope: str, now: float) -> bool:
    """Whether the agent's lease has run out (or no lease is on record, or the record cannot
    be read): its workers must stop."""
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        raw = _internal_kv_get(LEASE_PREFIX + scope, namespace=KV_NAMESPACE)
        return raw is None or now >= float(raw)
    except Exception:
        return True
