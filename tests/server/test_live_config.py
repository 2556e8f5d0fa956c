"""The live pool's scheduler configuration is tied to its round length."""

from __future__ import annotations

import time

import pytest

from computepool.scheduler.loop import SchedulerConfig
from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live


def test_live_defaults_follow_the_round():
    cfg = SchedulerConfig.live(1.0)
    assert cfg.recompute_on_change
    assert cfg.min_reset_seconds == pytest.approx(1920 / 360)
    assert SchedulerConfig.live(360.0).min_reset_seconds == pytest.approx(1920.0)


@pytest.fixture
def las_pool(tmp_path):
    data = tmp_path / "data"
    client, tok = open_live(data, f"sqlite:///{tmp_path / 'c.db'}", policy="las")
    try:
        with client:
            yield LivePool(client, bearer(tok), data)
    finally:
        kill_leftovers(data)


def test_new_job_gets_its_share_within_rounds_not_at_the_next_reset(las_pool):
    """A tenant's 1-accelerator job behind another tenant's gang holding every K80: with the
    simulator's defaults (reset at most every 1,920 s, allocation recomputed only then) it
    stayed queued for up to 32 minutes on a live pool."""
    p = las_pool
    a, b = p.tenant("holder"), p.tenant("newcomer")
    gang = p.submit(
        a, command="sleep 60", workers=9, accelerators_per_worker=4, accelerator_types=["K80"]
    ).json()["id"]
    p.wait_status(a, gang, "running", timeout=20)
    t0 = time.time()
    small = p.submit(b, command="sleep 60", accelerator_types=["K80"]).json()["id"]
    p.wait_status(b, small, "running", timeout=20)
    assert time.time() - t0 < 20
    for who, job in ((a, gang), (b, small)):
        p.client.post(f"/v1/jobs/{job}/cancel", headers=who)
