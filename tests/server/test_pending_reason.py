"""Every "no" has a reason: a waiting job's pending reason names the quota, the placement
(fragmentation) or the capacity that held it back, not a generic "waiting for N free"."""

from __future__ import annotations

import time

import pytest

from tests.server.conftest import LivePool, sqlite_live


@pytest.fixture
def pool(tmp_path):
    with sqlite_live(tmp_path, placement="bestfit") as p:
        yield p


def _reason(p: LivePool, job: int) -> str:
    svc = p.client.app.state.ctx.service
    end = time.time() + 10
    while time.time() < end:
        st = svc.pending_reason(job)
        if st is not None:
            return f"{st.source}: {st.reason}"
        time.sleep(0.1)
    raise AssertionError(f"job {job} has no pending reason")


def _k80(p, who, n: int, workers: int = 1, cmd: str = "sleep 60") -> int:
    spec = {"workers": workers, "accelerators_per_worker": n, "accelerator_types": ["K80"]}
    return p.submit(who, command=cmd, **spec).json()["id"]


def test_quota_reason_names_tenant_flavor_and_numbers(pool):
    who = pool.tenant("capped", quotas={"K80": {"nominal": 4}})
    first = _k80(pool, who, 4)
    pool.wait_status(who, first, "running")
    second = _k80(pool, who, 4)
    why = _reason(pool, second)
    assert why.startswith("quota:capped")
    assert "us-central/K80" in why and "needs 4, uses 4 of nominal 4" in why


def test_capacity_reason_says_how_much_is_free_where(pool):
    who = pool.tenant("big")
    hog = _k80(pool, who, 4, workers=8)  # 32 of 36 K80
    pool.wait_status(who, hog, "running")
    wants = _k80(pool, who, 4, workers=2)  # 8 K80: only 4 are free
    why = _reason(pool, wants)
    assert why.startswith("capacity:") and "us-central/K80 4 free of 36" in why


def test_fragmentation_reason_from_the_placer(pool):
    who = pool.tenant("frag")
    # three accelerators on each of the nine 4-K80 nodes: 9 free, one per node
    fill = [_k80(pool, who, 3) for _ in range(9)]
    for j in fill:
        pool.wait_status(who, j, "running")
    two = _k80(pool, who, 2)
    why = _reason(pool, two)
    assert why.startswith("placement:") and "us-central/K80 has 9 free" in why
    assert "fragmented" in why


def test_reason_reaches_the_api_the_cli_and_the_dashboard(pool):
    from computepool.cli.common import console
    from computepool.cli.jobs_view import print_job
    from computepool.cli.output import Output

    who = pool.tenant("shown", quotas={"K80": {"nominal": 4}})
    first = _k80(pool, who, 4)
    pool.wait_status(who, first, "running")
    second = _k80(pool, who, 4)
    _reason(pool, second)
    doc = pool.job(who, second)
    assert doc["pending_reason"]["source"] == "quota:shown"
    assert "needs 4, uses 4 of nominal 4" in doc["pending_reason"]["reason"]
    assert pool.job(who, first)["pending_reason"] is None  # running: nothing to explain
    page = pool.client.get(f"/jobs/{second}", headers=who).text
    assert "needs 4, uses 4 of nominal 4" in page and "[quota:shown]" in page
    listing = pool.client.get("/jobs", headers=who).text
    assert "[quota:shown]" in listing
    with console.capture() as cap:
        print_job(doc, Output.table, lambda t: t or "-")
    assert "[quota:shown] quota of tenant 'shown'" in cap.get()
