"""A job submitted through the API with the old field names is read as the new ones, and the
answer carries a deprecation in ``warnings`` (a job file read through the API has no stderr)."""

from __future__ import annotations

import pytest

from tests.server.conftest import LivePool, bearer, kill_leftovers, open_live


@pytest.fixture
def pool(tmp_path):
    data, url = tmp_path / "data", f"sqlite:///{tmp_path / 'cpool.db'}"
    client, tok = open_live(data, url, allow_unsandboxed=True)
    try:
        with client:
            live = LivePool(client, bearer(tok), data)
            yield live, live.tenant("acme")
    finally:
        kill_leftovers(data)


def test_old_names_are_read_as_the_new_ones_with_a_warning(pool):
    live, a = pool
    r = live.submit(a, workers=2, accel_per_worker=2, accelerators=["V100"], total_steps=60.0)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["accelerators"] == 4
    (w,) = body["warnings"]
    for old, new in [
        ("accel_per_worker", "accelerators_per_worker"),
        ("accelerators", "accelerator_types"),
        ("total_steps", "work"),
    ]:
        assert f"'{old}' (use '{new}')" in w
    spec = live.client.get(f"/v1/jobs/{body['id']}", headers=a).json()
    stored = spec.get("spec") or {}
    if stored:  # where the API shows the stored spec, it holds the new names only
        assert stored["work"] == 60.0 and "total_steps" not in stored


def test_new_names_bring_no_warnings_and_both_spellings_are_refused(pool):
    live, a = pool
    r = live.submit(a, accelerators_per_worker=1, work=60.0)
    assert r.status_code == 201 and "warnings" not in r.json()
    r = live.submit(a, work=60.0, total_steps=60.0)
    assert r.status_code == 422 and "not both" in r.text
