"""One simulation report for ``cpool simulate --report`` and ``cpool report RESULT.json``;
``cpool report`` never silently replaces a file another command wrote; charts with many
series keep every series distinct, legends below the plot."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.report import saved

runner = CliRunner()
SIM = ["simulate", "--pool", "gavel-36x3", "--workload", "gavel:rate=4.0,jobs=120,seed=0",
       "--policy", "las"]  # fmt: skip


def _sections(html: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", html)


def test_simulate_report_and_cpool_report_are_one_design_and_no_silent_overwrite(tmp_path):
    js, page = tmp_path / "out-sim.json", tmp_path / "out-sim.html"
    r = runner.invoke(app, [*SIM, "--json", str(js), "--report", str(page)])
    assert r.exit_code == 0, r.output
    first = page.read_text()
    for part in ("JCT distribution", "p50 JCT", "mean FTF ρ", "class='kpis'", "class='heat'"):
        assert part in first, part
    assert "data:image/png" not in first  # one design: inline SVG, as the dashboard

    r = runner.invoke(app, ["report", str(js)])
    assert r.exit_code == 2
    assert "written by `cpool simulate`" in r.output and "--force" in r.output
    assert page.read_text() == first  # untouched

    r = runner.invoke(app, ["report", str(js), "--force"])
    assert r.exit_code == 0, r.output
    again = page.read_text()
    assert _sections(again) == _sections(first)
    # the same figures: the page differs only in what names its source and writer
    strip = lambda h: re.sub(r"<meta name='generator'[^>]*>|<p class='sub'>.*?</p>", "", h)  # noqa: E731
    assert strip(again) == strip(first)

    r = runner.invoke(app, ["report", str(js)])  # its own earlier output: re-rendered
    assert r.exit_code == 0, r.output
    other = tmp_path / "mine.html"
    other.write_text("my notes")
    r = runner.invoke(app, ["report", str(js), "--out", str(other)])  # named: replaced
    assert r.exit_code == 0 and other.read_text().startswith("<!doctype html>")
    old = tmp_path / "old.html"
    r = runner.invoke(app, ["report", str(js), "-o", str(old)])  # the old short spelling
    assert r.exit_code == 0 and old.exists()


def _many_flavors(n: int) -> dict:
    flavors = [f"r{i // 4}/A{i % 4}" for i in range(n)]
    t = [0.0, 1.0, 2.0]
    return {
        "policy": "fifo", "pool": "p", "workload": "w",
        "utilization": {f: 0.5 for f in flavors},
        "timeline": {"t_hours": t, "utilization": {f: [0.1, 0.5, 0.9] for f in flavors},
                     "queued": [0, 1, 0], "capacity": {f: 8 for f in flavors}},
        "jct": {"fraction": [0.0, 0.5, 1.0], "hours": [0.1, 1.0, 10.0]},
    }  # fmt: skip


def test_many_series_stay_distinct_and_the_legend_stays_off_the_plot(tmp_path):
    p = tmp_path / "many.json"
    p.write_text(json.dumps(_many_flavors(20)))
    html = saved.render(p)
    chart = html[html.index("Utilisation over simulated time") :]
    lines = re.findall(r"<polyline points='[^']*' fill='none' stroke='([^']*)'[^>]*?"
                       r"(?: stroke-dasharray='([^']*)')?>", chart)  # fmt: skip
    styles = lines[:21]  # 20 flavors + the whole pool
    assert len(styles) == 21 and len(set(styles)) == 21
    svg_end = chart.index("</svg>")
    assert chart.index("class='legend'") > svg_end  # legend below the chart, not over it
    assert "stroke-dasharray" in chart[svg_end : chart.index("</div>", svg_end)]


def test_malformed_jct_names_the_field(tmp_path):
    doc = _many_flavors(2)
    doc["jct"] = {"fraction": [0.0, 1.0], "hours": [1.0, "x"]}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    r = runner.invoke(app, ["report", str(p)])
    assert r.exit_code == 2 and "field 'jct.hours' should be a list of numbers" in r.output
