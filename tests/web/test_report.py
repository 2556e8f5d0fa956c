"""``cpool report``: saved simulation and plan results as HTML in the dashboard's look; errors
that name the file and the field; the shared SVG and aggregation helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.report import saved
from computepool.report.svg import Series, line_chart, nice_max, stacked_bars
from computepool.server.ui.queries import interval_means

runner = CliRunner()


def _self_contained(html: str) -> None:
    assert html.startswith("<!doctype html>")
    assert "<script" not in html and 'src="http' not in html and "src='http" not in html


def test_simulation_json_renders_in_the_dashboard_look(tmp_path):
    out = tmp_path / "sim.json"
    r = runner.invoke(
        app,
        ["simulate", "--pool", "gavel-36x3", "--workload", "gavel:rate=4.0,jobs=120,seed=0",
         "--policy", "fifo", "--json", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert len(doc["timeline"]["t_hours"]) == len(doc["timeline"]["utilization"]["us-central/V100"])
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "sim.html").read_text()
    _self_contained(html)
    for part in ("class='kpis'", "class='heat'", "<svg class='chart'", "Utilisation over simulated",
                 "us-central/V100", "header class='top'"):  # fmt: skip
        assert part in html, part


def test_compare_json_shows_each_policy(tmp_path):
    out = tmp_path / "cmp.json"
    r = runner.invoke(
        app,
        ["compare", "--pool", "gavel-36x3", "--workload", "gavel:rate=4.0,jobs=80,seed=1",
         "--policies", "fifo,las", "--json", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "c.html"), "--title", "X"])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "c.html").read_text()
    assert "<title>X</title>" in html and "<th>fifo</th>" in html and "<th>las</th>" in html


PLAN = {
    "scenario": "two-years",
    "feasible": False,
    "npv_usd": 1.5e9,
    "years": [2026, 2027],
    "schedule": [
        {"year": 2026, "site": "a", "chip": "H20", "nodes": 2, "cards": 16, "cards_in_service": 16},
        {
            "year": 2027,
            "site": "a",
            "chip": "Ascend910C",
            "nodes": 1,
            "cards": 8,
            "cards_in_service": 8,
        },
    ],  # fmt: skip
    "cost_by_year_usd": {
        "capex": [1e8, 2e8],
        "site_build": [0, 5e7],
        "energy_and_carbon": [1e6, 2e6],
    },
    "power_mw": {"a": [1.0, 2.5]},
    "vendor_share": {"nvidia": [1.0, 0.5], "huawei": [0.0, 0.5]},
    "targets": [{"name": "train", "unit": "h100e", "value": 100.0, "achieved": 80.0}],
    "explanation": ["supply of H20 in 2027 is capped at 8 cards <script>"],
}


def test_plan_json_renders(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text(json.dumps(PLAN))
    html = saved.render(p)
    _self_contained(html)
    for part in ("Why the scenario is infeasible", "Cost by year", "Cards in service by chip",
                 "Ascend910C", "Vendor mix", "&lt;script&gt;", "$1.5B"):  # fmt: skip
        assert part in html, part
    assert ">no</td>" in html  # the target is not met


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes (line 1"),
        ('{"policy": "fifo", "pool": "p"}', "field 'utilization' is missing"),
        ('{"policy": "fifo", "pool": "p", "utilization": []}', "field 'utilization' should be a JSON object"),
        ('{"policy": "fifo", "pool": "p", "utilization": {"r/V100": "x"}}', "field 'utilization.r/V100' should be a number"),
        ('[{"policy": "a", "pool": "p", "utilization": {}}, {"pool": "p", "utilization": {}}]', "field '[1].policy' is missing"),
        ('{"policy": "a", "pool": "p", "utilization": {}, "timeline": {"t_hours": [1, 2], "utilization": {"r/V": [0.1]}}}',
         "field 'timeline.utilization.r/V' should be a list as long as timeline.t_hours"),
        ('{"scenario": "s", "years": [2026], "schedule": {}}', "field 'schedule' should be a JSON list"),
        ('{"hello": 1}', "neither a simulation result"),
        ("[]", "an empty list"),
    ],
)  # fmt: skip
def test_malformed_results_name_the_file_and_the_field(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ValueError) as exc:
        saved.render(p)
    assert str(exc.value).startswith(f"{p}: ") and message in str(exc.value)
    r = runner.invoke(app, ["report", str(p)])
    assert r.exit_code == 2 and "bad.json" in r.output and not (tmp_path / "bad.html").exists()


def test_missing_file(tmp_path):
    r = runner.invoke(app, ["report", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "nope.json: no such file" in r.output


def test_svg_helpers_escape_and_scale():
    assert nice_max(0) == 1.0 and nice_max(0.011) == pytest.approx(0.012)
    assert nice_max(216.8) == 300 and nice_max(1000) == 1000
    svg = line_chart([0, 1, 2], [Series("<b>x</b>", [0.0, 0.5, 1.0], "#000")], y_max=1.0)
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    assert "no data" in line_chart([], [Series("a", [], "#000")])
    bars = stacked_bars(["2026"], [Series("a", [2.0], "#111"), Series("b", [0.0], "#222")])
    assert bars.count("<rect") == 1 and ">b<" not in bars  # empty series left out of the legend


def test_interval_means_spreads_time_over_buckets():
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    start, end = np.array([5.0, 0.0]), np.array([25.0, 30.0])
    got = interval_means(start, end, np.array([2.0, 1.0]), np.array([0, 1]), 2, edges)
    assert got[:, 0].tolist() == [1.0, 2.0, 1.0]  # 2 accelerators for half, all, half a bucket
    assert got[:, 1].tolist() == [1.0, 1.0, 1.0]
    assert interval_means(start[:0], end[:0], start[:0], start[:0].astype(int), 2, edges).sum() == 0
