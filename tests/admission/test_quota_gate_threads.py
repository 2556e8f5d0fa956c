"""The quota gate's table when a live pool reads it from two threads: the round's thread
builds it, an API thread explains a waiting job with it, and tenants change meanwhile."""

from __future__ import annotations

import threading

from computepool.admission import quota
from computepool.admission.quota import QuotaGate
from computepool.model.tenant import FlavorQuota, Tenant
from tests.builders import make_pool


def _tenants(nominal: float) -> dict[str, Tenant]:
    return {"grow": Tenant("grow", 1.0, "", {"*": FlavorQuota(nominal)})}


def test_a_table_whose_building_an_update_overtook_is_never_used(monkeypatch):
    """A table built from the old quotas and stored after ``update`` gave the new ones was
    kept: a raised quota never counted (a job it held back waited for good)."""
    pool = make_pool({"A": (2, 4)})
    gate = QuotaGate(pool.flavors, _tenants(4))
    building, go_on = threading.Event(), threading.Event()
    build = quota.quota_table

    def held_build(*args, **kw):
        if threading.current_thread() is not threading.main_thread():
            building.set()
            assert go_on.wait(10)
        return build(*args, **kw)

    monkeypatch.setattr(quota, "quota_table", held_build)
    # another thread builds the table from the old quota (4) ...
    other = threading.Thread(target=gate.table_for, args=(["grow"],))
    other.start()
    assert building.wait(10)
    # ... the quota is raised while it builds, then it finishes and stores its table
    gate.update(_tenants(8))
    go_on.set()
    other.join(10)
    assert not other.is_alive()
    assert gate.table_for(["grow"]).nominal[0, 0] == 8
    # the same tenants again: the table is kept (not rebuilt each round)
    assert gate.table_for(["grow"]) is gate.table_for(["grow"])
