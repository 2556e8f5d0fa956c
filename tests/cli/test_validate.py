"""``cpool validate``: every kind of file, detected; each problem names file, line, field, reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from computepool.catalog.yaml_lines import load, split_path
from computepool.cli.app import app
from computepool.cli.file_kinds import check_file

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

POOL_OK = """\
name: tiny
regions: [cn-ulanqab]
node_groups:
  - {prefix: a, region: cn-ulanqab, accelerator: H800, per_node: 8, nodes: 2}
"""
POOL_BAD = """\
name: tiny
regions: [cn-ulanqab]
node_groups:
  - prefix: a
    region: cn-ulanqab
    accelerator: H800
    per_node: 0
    nodes: 2
"""
WORKLOAD_OK = """\
jobs:
  - {id: a, job_type: generic, reference_accelerator: H100, duration_hours: 1}
"""
WORKLOAD_BAD = """\
jobs:
  - id: a
    job_type: generic
    reference_accelerator: H100
    duration_hours: soon
"""
SERVICE_OK = """\
traffic: {duration_hours: 0.05}
services:
  - {name: chat, model: qwen2.5-7b, accelerators: [H20], min_replicas: 1, max_replicas: 2}
"""
SERVICE_BAD = """\
traffic: {duration_hours: 0.05}
services:
  - name: chat
    model: qwen2.5-7b
    min_replicas: 3
    max_replicas: two
"""
JOB_OK = "name: j\ncommand: echo hi\nworkers: 2\naccelerators_per_worker: 4\n"
JOB_BAD = """\
name: j
command: echo hi
workers: 2
datasets:
  - {name: d, data_class: eu.personal, origin: EU}
  - {name: e, data_class: personal, origin: EU}
"""
PLAN_BAD = """\
name: p
start_year: 2026
horizon_years: 2
targets:
  - {year: 2026, h100e: 100}
sites:
  - {name: s, region: cn-ulanqab, power_mw: -5}
chips:
  - {name: H800}
"""
SCENARIO_BAD = """\
name: s
pool: automotive-demo
tenants:
  - name: t
    datasets: []
    jobs:
      - {name: m, kind: train, rate_per_hour: 1, sizes: [8], duration: {median_hours: 1}}
approvals:
  - {id: a, kind: no-such-kind}
"""
STUDY_OK = "name: s\nworkload: wl.yaml\nper_node: 8\n"
STUDY_BAD = "name: s\nworkload: wl.yaml\nper_node: 8\nwindow: {start_day: -1}\n"
RULEBOOK_OK = """\
extends: default
rules:
  - {id: MY-1, data_classes: [my.class], origins: [CN], basis: mine, allow: [{to: [CN]}]}
"""
RULEBOOK_BAD = """\
extends: default
rules:
  - id: MY-1
    data_classes: [my.class]
    origins: [CN]
    basis: mine
    allow:
      - {to: [CN], requires: [no-such-approval]}
"""
APPROVALS_OK = "approvals:\n  - {id: a, kind: consent, handler: h, origin: CN, data_class: cn.pi}\n"
APPROVALS_BAD = """\
approvals:
  - {id: a, kind: consent}
  - id: b
    kind: consent
    expires: someday
"""

# kind, valid file text (None: a shipped example), invalid text, line:column, field
CASES = [
    ("pool", POOL_OK, POOL_BAD, "7:5", "node_groups[0].per_node"),
    ("workload", WORKLOAD_OK, WORKLOAD_BAD, "5", "duration_hours"),
    ("service", SERVICE_OK, SERVICE_BAD, "6:5", "services[0].max_replicas"),
    ("job", JOB_OK, JOB_BAD, "6:15", "datasets[1].data_class"),
    ("plan", None, PLAN_BAD, "7:35", "sites[0].power_mw"),
    ("scenario", None, SCENARIO_BAD, "9:13", "approvals[0].kind"),
    ("study", STUDY_OK, STUDY_BAD, "4:10", "window.start_day"),
    ("rulebook", RULEBOOK_OK, RULEBOOK_BAD, "8:20", "rules[0].allow[0].requires"),
    ("approvals", APPROVALS_OK, APPROVALS_BAD, "5:5", "approvals[1].expires"),
]
EXAMPLES = {
    "plan": ROOT / "examples/plans/tesla-parity-3y.yaml",
    "scenario": ROOT / "examples/residency/three-automakers.yaml",
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    (tmp_path / "wl.yaml").write_text(WORKLOAD_OK)  # what the study refers to
    return p


@pytest.mark.parametrize(
    ("kind", "good", "bad", "where", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_each_kind_valid_and_invalid(tmp_path, kind, good, bad, where, field):
    ok = EXAMPLES[kind] if good is None else _write(tmp_path, f"good-{kind}.yaml", good)
    res = runner.invoke(app, ["validate", str(ok)])
    assert res.exit_code == 0, res.output
    assert f"OK {ok} ({kind})" in res.output

    wrong = _write(tmp_path, f"bad-{kind}.yaml", bad)
    res = runner.invoke(app, ["validate", str(wrong)])
    assert res.exit_code == 1, res.output
    assert f"FAIL {wrong} ({kind})" in res.output
    assert f"{wrong}:{where}: {field}: " in res.output, res.output


def test_job_problems_from_the_servers_schema(tmp_path):
    p = _write(tmp_path, "job.yaml", "command: ''\nworkers: 0\nstacks: [cuda, vulkan]\nbogus: 1\n")
    out = check_file(p)
    assert out.kind == "job"
    got = {(f.field, f.at.line if f.at else None) for f in out.findings}
    assert got == {("command", 1), ("workers", 2), ("stacks", 3), ("bogus", 4)}
    assert any("unknown stack 'vulkan'" in f.reason for f in out.findings)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = _write(tmp_path, "broken.yaml", "command: echo\nworkers: [1\n")
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code == 1
    assert f"{p}:3:1: not valid YAML" in res.output and "2:10" in res.output
    assert "<unicode string>" not in res.output


def test_trace_files_are_workloads(tmp_path):
    good = ROOT / "tests/placement/data/layout_full.csv"
    res = runner.invoke(app, ["validate", str(good)])
    assert res.exit_code == 0 and f"OK {good} (workload)" in res.output
    bad = _write(
        tmp_path,
        "pods.csv",
        good.read_text().replace("p-two,16000,32768,2,1000", "p-two,16000,32768,2,abc"),
    )
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1 and f"{bad}:4: gpu_milli: 'abc' is not a number" in res.output


def test_jsonl_workload_line(tmp_path):
    p = _write(
        tmp_path,
        "w.jsonl",
        '{"id": "a", "job_type": "generic", "reference_accelerator": "H100", "duration_hours": 1}\n'
        '{"id": "b", "job_type": "generic", "reference_accelerator": "H100", "workers": 0,'
        ' "duration_hours": 1}\n',
    )
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code == 1 and f"{p}:2: workers: " in res.output, res.output


def test_many_files_exit_1_if_any_is_bad_and_each_is_reported(tmp_path):
    good = _write(tmp_path, "j.yaml", JOB_OK)
    bad = _write(tmp_path, "p.yaml", POOL_BAD)
    res = runner.invoke(app, ["validate", str(good), str(bad), str(tmp_path / "none.yaml")])
    assert res.exit_code == 1
    assert f"OK {good} (job)" in res.output and f"FAIL {bad} (pool)" in res.output
    assert f"{tmp_path / 'none.yaml'}: no such file" in res.output
    assert runner.invoke(app, ["validate", str(good), str(good)]).exit_code == 0


def test_kind_can_be_forced_and_unknown_files_say_how(tmp_path):
    p = _write(tmp_path, "x.yaml", "color: blue\n")
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code == 1 and "cannot tell what kind" in res.output and "--kind" in res.output
    job = _write(tmp_path, "j.yaml", JOB_OK)
    res = runner.invoke(app, ["validate", "--kind", "pool", str(job)])
    assert res.exit_code == 1 and "(pool)" in res.output and "command: unknown field" in res.output
    assert runner.invoke(app, ["validate", "--kind", "nonsense", str(job)]).exit_code == 2


def test_positions_walk_mappings_and_sequences():
    doc = load("a:\n  - x: 1\n  - {y: 2, z: 3}\n", "f.yaml")
    assert str(doc.position("a[1].z")) == "3:12"
    assert str(doc.position(["a", 0, "x"])) == "2:5"
    assert str(doc.position("a[7].q")) == "1:1"  # the deepest that exists: key a
    assert split_path("services[].share") == ["services", "share"]


def test_pack_inputs_pod_and_node_lists(tmp_path):
    data = ROOT / "tests/placement/data"
    res = runner.invoke(
        app, ["validate", str(data / "layout_minimal.csv"), str(data / "layout_nodes.csv")]
    )
    assert res.exit_code == 0, res.output
    assert "(pods): 4 pods" in res.output and "(nodes): 3 nodes" in res.output
    bad = _write(tmp_path, "nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,-1,2,T4\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1 and f"{bad}:2: memory_mib: -1 is negative" in res.output
