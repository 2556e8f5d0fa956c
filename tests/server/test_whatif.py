"""The live pool as a what-if: ``GET /v1/snapshot`` (admin), ``cpool simulate --from`` predicts
each waiting job's start and finish, and the prediction is checked against what the live pool
then really did."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from typer.testing import CliRunner

from computepool.catalog.pools import load_pool
from computepool.catalog.throughputs import load_throughputs
from computepool.cli.app import app
from computepool.sim.whatif import parse_add, read_snapshot
from computepool.traces.errors import TraceError
from tests.server.conftest import TEST_POOL, sqlite_live


@pytest.fixture
def pool(tmp_path):
    with sqlite_live(tmp_path) as p:
        yield p


def _rate() -> float:
    """Work per second of a generic 4-K80 job (what the live pool charges as progress)."""
    p = load_pool(TEST_POOL)
    return load_throughputs("gavel", accelerators=p.accelerators).rate("generic", 4, "K80")


def test_snapshot_needs_an_admin_token(pool):
    who = pool.tenant("nosy")
    assert pool.client.get("/v1/snapshot", headers=who).status_code == 403
    assert pool.client.get("/v1/snapshot", headers=pool.admin).status_code == 200


def test_predicted_starts_match_the_live_pool(pool, tmp_path):
    who = pool.tenant("queue", quotas={"K80": {"nominal": 4}}, cohort="")
    rate = _rate()
    secs = {"a": 6.0, "b": 4.0, "c": 3.0}
    ids = {}
    for name, s in secs.items():
        spec = {"name": name, "command": f"sleep {s}", "work": s * rate, "workers": 1,
                "accelerators_per_worker": 4, "accelerator_types": ["K80"]}  # fmt: skip
        ids[name] = pool.submit(who, **spec).json()["id"]
        if name == "a":
            pool.wait_status(who, ids[name], "running")
    time.sleep(0.5)
    snap = pool.client.get("/v1/snapshot", headers=pool.admin).json()
    state = tmp_path / "state.json"
    state.write_text(json.dumps(snap))
    assert len(snap["jobs"]) == 3 and snap["jobs"][0]["status"] == "running"
    assert snap["tenants"][0]["quotas"] == {"K80": "4"}
    out = tmp_path / "pred.json"
    res = CliRunner().invoke(
        app, ["simulate", "--from", str(state), "--round-seconds", "0.5", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    pred = {j["id"]: j for j in json.loads(out.read_text())["jobs"]}
    # the live pool runs them one at a time (quota 4 K80): record when each really started
    for name in ("b", "c"):
        pool.wait_status(who, ids[name], "running", timeout=30)
    actual = {}
    for name in ("b", "c"):
        started = pool.job(who, ids[name])["started_at"]
        actual[name] = datetime.fromisoformat(started).timestamp() - snap["taken_at"]
    for name in ("b", "c"):
        got = pred[str(ids[name])]["start_s"]
        assert got is not None
        # within a few seconds: live rounds, process start-up and the what-if's 0.5 s rounds
        assert abs(got - actual[name]) < 3.0, (name, got, actual[name])
    assert (
        pred[str(ids["a"])]["running"]
        and pred[str(ids["a"])]["end_s"] < pred[str(ids["b"])]["end_s"]
    )


def test_add_nodes_and_bad_inputs(pool, tmp_path):
    who = pool.tenant("many")
    spec = {"command": "sleep 30", "workers": 9, "accelerators_per_worker": 4,
            "accelerator_types": ["K80"]}  # fmt: skip
    first = pool.submit(who, **spec).json()["id"]
    pool.wait_status(who, first, "running")
    second = pool.submit(who, **spec).json()["id"]
    state = tmp_path / "state.json"
    state.write_text(json.dumps(pool.client.get("/v1/snapshot", headers=pool.admin).json()))
    base = ["simulate", "--from", str(state), "--round-seconds", "5"]
    out = tmp_path / "p.json"
    assert CliRunner().invoke(app, [*base, "--json", str(out)]).exit_code == 0
    alone = {j["id"]: j for j in json.loads(out.read_text())["jobs"]}
    assert alone[str(second)]["start_s"] >= 25  # waits for the first 36 K80 to free
    res = CliRunner().invoke(app, [*base, "--add", "us-central/K80=9x4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    more = {j["id"]: j for j in json.loads(out.read_text())["jobs"]}
    assert more[str(second)]["start_s"] < 10  # 36 more K80: it starts at once
    with pytest.raises(ValueError, match="REGION/ACCEL=NxPER"):
        parse_add("K80=4")
    res = CliRunner().invoke(app, [*base, "--add", "mars/K80=1x4"])
    assert res.exit_code != 0 and "unknown region 'mars'" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "computepool.snapshot", "version": 1}))
    with pytest.raises(TraceError, match="taken_at"):
        read_snapshot(bad)
    res = CliRunner().invoke(app, ["simulate", "--from", str(state), "--pool", "gavel-36x3"])
    assert res.exit_code != 0 and "--from replaces --pool" in res.output
