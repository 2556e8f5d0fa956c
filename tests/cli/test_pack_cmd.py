import json

import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.cli.pack_cmd import parse_seeds
from tests.placement.helpers import NODES, PODS

runner = CliRunner()


def test_pack_runs_and_writes_json(tmp_path):
    out = tmp_path / "p.json"
    args = ["pack", "--nodes", str(NODES), "--pods", str(PODS), "--policy", "fgd"]
    r = runner.invoke(app, [*args, "--seeds", "1-2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [1, 2] and len(doc["per_seed"][0]["allocated"]) == 131
    assert 0 < doc["allocated_at_top"] <= 100 and doc["decision_ms_p99"] > 0


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--policy", "tetris"], "unknown placement profile 'tetris'"),
        (["--seeds", "51-42"], "must be A-B"),
        (["--seeds", "x"], "not an integer"),
        (["--tune", "0"], "--tune"),
    ],
)
def test_pack_refuses_bad_input(extra, match):
    r = runner.invoke(app, ["pack", "--nodes", str(NODES), "--pods", str(PODS), *extra])
    assert r.exit_code == 2
    assert match in r.output


def test_pack_names_the_bad_file(tmp_path):
    bad = tmp_path / "nodes.csv"
    bad.write_text("sn,cpu_milli\n")
    r = runner.invoke(app, ["pack", "--nodes", str(bad), "--pods", str(PODS)])
    assert r.exit_code == 2 and "missing column" in r.output


def test_parse_seeds():
    assert parse_seeds("42-44,50") == [42, 43, 44, 50]


def test_simulate_refuses_an_unknown_placement():
    r = runner.invoke(
        app,
        ["simulate", "--pool", "gavel-36x3", "--workload", "gavel:jobs=5", "--placement", "x"],
    )
    assert r.exit_code == 2 and "unknown placement profile 'x'" in r.output


def test_simulate_with_placement_prints_fragmentation():
    r = runner.invoke(
        app,
        [
            "simulate",
            "--pool",
            "gavel-36x3",
            "--workload",
            "gavel:rate=20,jobs=40,multi_gpu=true,seed=1",
            "--placement",
            "fgd",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "fragmented (mean)" in r.output
