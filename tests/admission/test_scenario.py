from pathlib import Path

from computepool.admission.approvals import TimeBase
from computepool.scenario.report import render_scenario_report
from computepool.scenario.residency import load_scenario, run_scenario

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "residency" / "three-automakers.yaml"


def test_three_automakers_scenario_obeys_the_rules_and_reports():
    spec = load_scenario(EXAMPLE)
    spec = spec.model_copy(update={"offload": spec.offload.model_copy(update={"minutes": 5})})
    res = run_scenario(spec)
    expiry = TimeBase(res.check.timebase.epoch).seconds("2026-01-09")
    for rec in res.check.audit.records(res.workload.ids):
        if rec["outcome"] != "allowed":
            continue
        job = rec["job"]
        if "/adas/" in job or "/perception/" in job or "/camera-prep/" in job:
            want = "eu-" if "/adas/" in job else "cn-"
            assert rec["region"].startswith(want), rec
        if "/fleet-train/" in job and rec["region"].startswith("cn-"):
            assert rec["time"] < expiry and rec["approvals"] == ["mf-contract-cn"], rec
    rows = {t["tenant"]: t for t in res.tenants}
    assert set(rows) == {"huaxia-motors", "europa-auto", "merlion-fleet"}
    assert all(0.9 <= rows[t]["deadline_hit_rate"] <= 1.0 for t in rows)
    assert rows["europa-auto"]["transfer_tb"] > 0  # anonymised camera data leaves Frankfurt
    html = render_scenario_report(res)
    assert html.count("data:image/png") == 3 and "Rules that decided" in html
