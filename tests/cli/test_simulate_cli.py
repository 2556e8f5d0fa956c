import json

import numpy as np
import pytest
from typer.testing import CliRunner

from computepool.cli.app import app

runner = CliRunner()


def test_simulate_writes_json_with_contract_fields(tmp_path):
    out = tmp_path / "r.json"
    rep = tmp_path / "r.html"
    res = runner.invoke(
        app,
        [
            "simulate",
            "--pool",
            "gavel-36x3",
            "--workload",
            "gavel:rate=4.0,jobs=300,seed=0",
            "--policy",
            "fifo",
            "--window",
            "100:200",
            "--json",
            str(out),
            "--report",
            str(rep),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    for key in (
        "avg_jct_hours",
        "p50_jct_hours",
        "p99_jct_hours",
        "makespan_hours",
        "mean_ftf_rho",
        "jobs_completed",
        "utilization",
        "wall_seconds",
    ):
        assert key in doc
    assert doc["jobs_completed"] == 100
    assert set(doc["utilization"]) == {"us-central/K80", "us-central/P100", "us-central/V100"}
    html = rep.read_text()
    assert (
        html.startswith("<!doctype html>") and 'src="http' not in html and "<script src" not in html
    )


def test_compare_runs_several_policies(tmp_path):
    out = tmp_path / "c.json"
    res = runner.invoke(
        app,
        [
            "compare",
            "--pool",
            "gavel-36x3",
            "--workload",
            "gavel:rate=4.0,jobs=200,seed=1",
            "--policies",
            "fifo,fifo-agnostic",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    docs = json.loads(out.read_text())
    assert [d["policy"] for d in docs] == ["fifo", "fifo-agnostic"]


def test_unknown_policy_is_a_clear_error():
    res = runner.invoke(
        app, ["simulate", "--pool", "gavel-36x3", "--workload", "gavel:jobs=10", "--policy", "nope"]
    )
    assert res.exit_code == 2
    assert "unknown policy 'nope'" in res.output


def test_bad_window_and_missing_trace_are_clear_errors(tmp_path):
    res = runner.invoke(
        app, ["simulate", "--pool", "gavel-36x3", "--workload", "gavel:jobs=10", "--window", "5-3"]
    )
    assert res.exit_code == 2 and "--window" in res.output
    missing = tmp_path / "none.csv"
    res = runner.invoke(app, ["simulate", "--pool", "gavel-36x3", "--workload", str(missing)])
    assert res.exit_code == 2 and "none.csv" in res.output


def test_unknown_pool_is_a_clear_error():
    res = runner.invoke(app, ["simulate", "--pool", "no-such-pool", "--workload", "gavel:jobs=10"])
    assert res.exit_code == 2
    assert "no-such-pool" in res.output


def test_validate_pool_and_bad_pool(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nregions: [cn-ulanqab]\nnode_groups:\n"
        "  - {prefix: x, region: cn-ulanqab, accelerator: H1000, per_node: 8, nodes: 1}\n"
    )
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "bad.yaml:4:37: node_groups[0].accelerator" in res.output
    assert "H1000" in res.output


def test_catalog_lists_types_regions_pools():
    res = runner.invoke(app, ["catalog"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for word in ("Ascend910C", "MLU370", "K100", "eu-frankfurt", "automotive-demo"):
        assert word in res.output


def test_ftf_baseline_isolated_divides_by_the_isolated_run(tmp_path):
    from computepool.sim.run import SimConfig
    from computepool.sim.runner import isolated_jct, load_inputs, run_policy

    out = tmp_path / "c.json"
    args = ["--pool", "gavel-36x3", "--workload", "gavel:rate=5.0,jobs=150,seed=2"]
    res = runner.invoke(
        app,
        ["compare", *args, "--policies", "las,las-packed", "--window", "50:100"]
        + ["--ftf-baseline", "isolated", "--json", str(out)],
    )
    assert res.exit_code == 0, res.output
    docs = json.loads(out.read_text())
    inputs = load_inputs("gavel-36x3", "gavel:rate=5.0,jobs=150,seed=2")
    cfg = SimConfig(window=(50, 100))
    iso = isolated_jct(inputs, cfg)
    jct = run_policy(inputs, "las", cfg).jct
    want = float(np.mean((jct / iso)[50:100]))
    assert docs[0]["mean_ftf_rho"] == pytest.approx(want)
    assert docs[0]["config"]["ftf_baseline"] == "isolated"
    bad = runner.invoke(app, ["simulate", *args, "--policy", "las", "--ftf-baseline", "nope"])
    assert bad.exit_code != 0


def test_simulate_json_records_each_policy_calls_lp_time(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(
        app,
        ["simulate", "--pool", "gavel-36x3", "--workload", "gavel:rate=4.0,jobs=60,seed=0",
         "--policy", "las", "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    pt = doc["policy_time"]
    assert len(pt["at_hours"]) == len(pt["seconds"]) == doc["policy_calls"] > 0
    assert all(s > 0 for s in pt["seconds"])
    assert pt["at_hours"] == sorted(pt["at_hours"])
    assert sum(pt["seconds"]) == pytest.approx(doc["policy_s_total"], rel=1e-2)
