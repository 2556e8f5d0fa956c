"""``cpool plan`` and ``cpool pool-vs-silos`` end to end on small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from computepool.cli.app import app
from tests.plan.helpers import chip, scenario_doc, site

PHILLY_EXCERPT = Path(__file__).resolve().parents[1] / "traces" / "data" / "philly_excerpt.csv"
runner = CliRunner()


def _write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_plan_writes_json_and_report(tmp_path):
    scen = _write(tmp_path, scenario_doc(chips=[chip(supply=1000)]))
    out, html = tmp_path / "p.json", tmp_path / "p.html"
    res = runner.invoke(
        app,
        ["plan", str(scen), "--json", str(out), "--report", str(html), "--sweep", "supply:X=1,0.5"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["feasible"] and doc["schedule"][0]["cards"] == 1000
    assert [p["feasible"] for p in doc["sweep"]["points"]] == [True, False]
    page = html.read_text()
    assert "Capacity plan" in page and "data:image/png;base64" in page and "<script" not in page


def test_plan_infeasible_exits_1_with_explanation(tmp_path):
    scen = _write(tmp_path, scenario_doc(sites=[site(power_mw=0.5)]))
    res = runner.invoke(app, ["plan", str(scen), "--report", str(tmp_path / "r.html")])
    assert res.exit_code == 1
    assert "short by 500 H100e" in res.output
    assert "Why the scenario is infeasible" in (tmp_path / "r.html").read_text()


def test_plan_bad_inputs_exit_2(tmp_path):
    res = runner.invoke(app, ["plan", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2 and "file not found" in res.output
    scen = _write(tmp_path, scenario_doc(targets=[{"year": 1999, "h100e": 1}]))
    res = runner.invoke(app, ["plan", str(scen)])
    assert res.exit_code == 2 and "targets[0].year" in res.output
    scen = _write(tmp_path, scenario_doc())
    res = runner.invoke(app, ["plan", str(scen), "--sweep", "colour=1,2"])
    assert res.exit_code == 2 and "unknown parameter" in res.output


def test_pool_vs_silos_on_the_philly_excerpt(tmp_path):
    out, html = tmp_path / "s.json", tmp_path / "s.html"
    res = runner.invoke(
        app,
        [
            "pool-vs-silos",
            "--workload",
            str(PHILLY_EXCERPT),
            "--tenants",
            "3",
            "--json",
            str(out),
            "--report",
            str(html),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    arr = doc["arrangements"]
    assert set(arr) == {"silos", "pool", "smaller pool"}
    assert arr["smaller pool"]["cards"] <= arr["silos"]["cards"]
    assert len(doc["tenants"]) == 3
    assert "Pool vs silos" in html.read_text()


def test_pool_vs_silos_errors(tmp_path):
    res = runner.invoke(app, ["pool-vs-silos"])
    assert res.exit_code == 2 and "workload: required" in res.output
    res = runner.invoke(app, ["pool-vs-silos", "--workload", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "not found" in res.output
    study = tmp_path / "st.yaml"
    study.write_text(f"workload: {PHILLY_EXCERPT}\naccelerator: NOPE\n")
    res = runner.invoke(app, ["pool-vs-silos", str(study)])
    assert res.exit_code == 2 and "accelerator" in res.output and "NOPE" in res.output
