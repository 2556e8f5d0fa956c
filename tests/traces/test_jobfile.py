"""Our YAML / JSONL workload format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from computepool.model.job import JobKind
from computepool.traces import (
    TraceError,
    load_workload,
    read_jsonl_jobs,
    read_yaml_jobs,
    read_yaml_workload,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "workloads" / "small.yaml"


def test_example_file(throughputs):
    jobs = read_yaml_jobs(EXAMPLE, throughputs)
    assert len(jobs) == 10
    by_id = {j.id: j for j in jobs}
    r50 = by_id["resnet50-dist"]
    assert r50.tenant == "automaker-a"  # from defaults
    assert r50.scale_factor == 4 and r50.arrival == 900.0 and r50.priority == 1
    assert r50.total_steps == pytest.approx(
        6 * 3600 * throughputs.rate("ResNet-50 (batch size 64)", 4, "V100")
    )
    assert by_id["recsys"].total_steps == 150000 and by_id["recsys"].accelerators == ("P100", "K80")
    assert by_id["lm-small"].deadline == 6 * 3600
    assert by_id["a3c-rl"].preemptible is False
    assert by_id["serve-planner"].kind is JobKind.SERVE and by_id["serve-planner"].command
    eu = by_id["lane-detect-eu"].datasets[0]
    assert (eu.origin, eu.persons, eu.anonymised) == ("EU", 250000, True)
    w = read_yaml_workload(EXAMPLE, throughputs)
    assert len(w) == 10 and sorted(w.tenants) == ["automaker-a", "automaker-b", "automaker-c"]
    assert len(load_workload(str(EXAMPLE), throughputs=throughputs)) == 10


def test_jsonl_roundtrip(tmp_path, throughputs):
    p = tmp_path / "w.jsonl"
    recs = [
        {"id": "a", "job_type": "A3C", "duration_hours": 1, "arrival_hours": 0.5},
        {"id": "b", "total_steps": 100, "workers": 2, "tenant": "t2", "kind": "preprocess"},
    ]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    jobs = read_jsonl_jobs(p, throughputs)
    assert [j.id for j in jobs] == ["a", "b"]
    assert jobs[0].arrival == 1800 and jobs[0].total_steps == pytest.approx(
        3600 * throughputs.rate("A3C", 1, "V100")
    )
    assert jobs[1].kind is JobKind.PREPROCESS and jobs[1].scale_factor == 2
    w = load_workload(str(p), throughputs=throughputs)
    assert w.ids == ["b", "a"]  # the Workload is in arrival order


YAML_BAD = [
    # (job text, line, field, reason)
    ("  - {id: x, job_type: ResNet-9000, total_steps: 10}", 4, "job_type", "unknown job type"),
    ("  - id: x\n    total_steps: -1", 5, "total_steps", "greater than or equal to 0"),
    ("  - id: x\n    total_steps: lots", 5, "total_steps", "valid number"),
    ("  - id: x\n    total_steps: 10\n    colour: red", 6, "colour", "Extra inputs"),
    ("  - id: x\n    duration_hours: 1\n    total_steps: 3", 4, "job", "exactly one of"),
    (
        "  - id: x\n    total_steps: 1\n    datasets: [{name: d, size_gb: -2}]",
        6,
        "datasets.0.size_gb",
        "greater than",
    ),
    (
        "  - id: x\n    duration_hours: 1\n    reference_accelerator: TPUv9",
        6,
        "reference_accelerator",
        "no rate",
    ),
    ("  - {id: a, total_steps: 1}\n  - {id: a, total_steps: 2}", 5, "id", "repeats job 0"),
]


@pytest.mark.parametrize(("job", "line", "field", "why"), YAML_BAD)
def test_yaml_errors(tmp_path, throughputs, assert_names, job, line, field, why):
    p = tmp_path / "w.yaml"
    p.write_text("name: t\n# a comment\njobs:\n" + job + "\n")
    with pytest.raises(TraceError) as exc:
        read_yaml_jobs(p, throughputs)
    assert_names(str(exc.value), p, line, field)
    assert why in str(exc.value)
    assert "job " in str(exc.value)


def test_yaml_error_in_defaults_points_at_defaults(tmp_path, throughputs, assert_names):
    p = tmp_path / "w.yaml"
    p.write_text("defaults:\n  workers: 0\njobs:\n  - {total_steps: 1}\n")
    with pytest.raises(TraceError) as exc:
        read_yaml_jobs(p, throughputs)
    assert_names(str(exc.value), p, 1, "workers")


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("jobs: [\n", 2, "yaml"),
        ("- {total_steps: 1}\n", 1, "jobs"),
        ("jobz: []\njobs: []\n", 1, "jobz"),
    ],
)
def test_yaml_structure_errors(tmp_path, throughputs, assert_names, text, line, field):
    p = tmp_path / "w.yaml"
    p.write_text(text)
    with pytest.raises(TraceError) as exc:
        read_yaml_jobs(p, throughputs)
    assert_names(str(exc.value), p, line, field)


@pytest.mark.parametrize(
    ("line3", "field", "why"),
    [
        ('{"id": "c", "total_steps": 1, "weight": 0}', "weight", "greater than 0"),
        ('{"id": "c", "total_steps": "x"}', "total_steps", "valid number"),
        ('{"id": "c", "job_type": "Nope", "total_steps": 1}', "job_type", "unknown job type"),
        ('{"id": "c", "total_steps": 1', "json", "not valid JSON"),
        ("[1, 2]", "job", "not a mapping"),
    ],
)
def test_jsonl_errors(tmp_path, throughputs, assert_names, line3, field, why):
    p = tmp_path / "w.jsonl"
    p.write_text('{"id": "a", "total_steps": 1}\n\n' + line3 + "\n")
    with pytest.raises(TraceError) as exc:
        read_jsonl_jobs(p, throughputs)
    assert_names(str(exc.value), p, 3, field)
    assert why in str(exc.value)
