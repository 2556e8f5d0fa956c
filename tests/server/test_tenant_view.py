"""Tenants read from the store by several threads of a live pool (``server/tenant_view.py``)."""

from __future__ import annotations

import threading

from computepool.server.tenant_view import TenantView

OLD = ({"grow": "quota 4"}, frozenset())
NEW = ({"grow": "quota 8"}, frozenset({"grow"}))


def test_an_older_read_never_overwrites_a_newer_one():
    """The round's periodic refresh read the store just before an admin raised a quota; the
    admin's refresh read the raise and published it; then the periodic one published its
    older rows over it (the raise was undone until the next periodic read)."""
    view = TenantView(every_s=2.0)
    reading, go_on = threading.Event(), threading.Event()

    def slow_old_read():
        reading.set()
        assert go_on.wait(10)
        return OLD

    periodic = threading.Thread(target=view.refresh, args=(slow_old_read, 100.0))
    periodic.start()
    assert reading.wait(10)  # it has read the old rows, not yet compared them
    admin = threading.Thread(target=view.refresh, args=(lambda: NEW, 100.1, True))
    admin.start()
    admin.join(0.5)  # it must wait for the read in progress (without the lock it is done)
    go_on.set()
    for t in (periodic, admin):
        t.join(10)
        assert not t.is_alive()
    assert view.take() == NEW
    assert view.over_budget == NEW[1]


def test_a_change_is_handed_over_once_and_reads_are_spaced():
    view, reads = TenantView(every_s=2.0), []

    def read():
        reads.append(1)
        return NEW if len(reads) > 1 else OLD

    assert view.refresh(read, 0.0)
    assert view.take() == OLD and view.take() is None
    assert not view.refresh(read, 1.0) and len(reads) == 1  # not due
    assert view.refresh(read, 1.0, force=True) and view.take() == NEW
    assert not view.refresh(read, 5.0) and view.take() is None  # read, unchanged
    assert len(reads) == 3
