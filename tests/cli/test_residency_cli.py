import json

from typer.testing import CliRunner

from computepool.cli.app import app

runner = CliRunner()
JOBS = """
jobs:
  - {id: cn, job_type: generic, workers: 8, total_steps: 36000, stacks: [cuda],
     datasets: [{name: fleet, data_class: cn.important, origin: CN, stored_in: cn-ulanqab, size_gb: 100}]}
  - {id: eu, job_type: generic, workers: 8, total_steps: 36000, arrival: 60,
     datasets: [{name: eu-drivers, data_class: eu.personal, origin: EU, stored_in: eu-frankfurt}]}
  - {id: map, job_type: generic, workers: 8, total_steps: 36000, arrival: 120,
     datasets: [{name: maps, data_class: cn.mapping, origin: CN, stored_in: ap-singapore}]}
"""


def test_simulate_with_residency_writes_audit_and_audit_reads_it(tmp_path):
    wl = tmp_path / "jobs.yaml"
    wl.write_text(JOBS)
    audit = tmp_path / "audit.jsonl"
    out = tmp_path / "s.json"
    r = runner.invoke(app, ["simulate", "--pool", "automotive-demo", "--workload", str(wl),
                            "--audit", str(audit), "--json", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads(out.read_text())
    assert s["residency"]["starts_by_rule"] == {"CN-1": 1, "EU-1": 1}
    assert s["residency"]["rejections_by_rule"] == {"residency:CN-2": 1}
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {r["job"]: r["outcome"] for r in recs} == {
        "cn": "allowed",
        "eu": "allowed",
        "map": "rejected",
    }
    assert next(r for r in recs if r["job"] == "cn")["region"] == "cn-ulanqab"
    r = runner.invoke(app, ["audit", str(audit), "--rule", "CN-2", "--json"])
    assert r.exit_code == 0 and '"map"' in r.output and '"cn"' not in r.output
    r = runner.invoke(
        app, ["simulate", "--pool", "automotive-demo", "--workload", str(wl), "--rulebook", "off"]
    )
    assert r.exit_code == 0 and "Residency" not in r.output


def test_bad_inputs_are_clear_errors(tmp_path):
    bad = tmp_path / "audit.jsonl"
    bad.write_text('{"job": "a", "outcome": "allowed"}\nnot json\n')
    r = runner.invoke(app, ["audit", str(bad)])
    assert r.exit_code == 2 and "line 2: not valid JSON" in r.output
    rb = tmp_path / "rules.yaml"
    rb.write_text("rules: [{id: X}]\n")
    r = runner.invoke(app, ["rules", "--rulebook", str(rb)])
    assert r.exit_code == 2 and "rules[0].data_classes" in r.output
    sc = tmp_path / "s.yaml"
    sc.write_text("name: x\ntenants: [{name: t, jobs: [{name: j, rate_per_hour: 1, sizes: [1], "
                  "duration: {median_hours: 1}, datasets: [nope]}]}]\n")  # fmt: skip
    r = runner.invoke(app, ["scenario", str(sc)])
    assert r.exit_code == 2 and "unknown dataset 'nope'" in r.output and str(sc) in r.output
    r = runner.invoke(
        app, ["route", "--from", "atlantis", "--deadline-ms", "100", "--work-h100-ms", "1"]
    )
    assert r.exit_code == 2 and "not a known site" in r.output


def test_route_command():
    r = runner.invoke(app, ["route", "--from", "shanghai", "--deadline-ms", "1500", "--work-h100-ms", "300",
                            "--data-class", "cn.pi.sensitive", "--origin", "CN", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    ans = json.loads(r.output)
    assert ans["target"].startswith("cn-") and ans["total_ms"] <= 1500
