"""A workload file's job takes the live API's field names too (one job contract)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from computepool.traces.errors import TraceError
from computepool.traces.jobfile import read_jsonl_jobs, read_yaml_jobs


def test_api_names_are_the_same_fields(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text(
        "jobs:\n"
        "  - {id: a, workers: 2, accelerators_per_worker: 4, accelerator_types: [H100], work: 7200}\n"
        "  - {id: b, workers: 2, accel_per_worker: 4, accelerators: [H100], total_steps: 7200}\n"
    )
    a, b = read_yaml_jobs(p)
    assert (a.accel_per_worker, a.accelerators, a.total_steps) == (4.0, ("H100",), 7200.0)
    assert (a.accel_per_worker, a.accelerators, a.total_steps) == (
        b.accel_per_worker, b.accelerators, b.total_steps,
    )  # fmt: skip


def test_both_spellings_at_once_is_an_error(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text("jobs:\n  - {id: a, work: 10, total_steps: 10}\n")
    with pytest.raises(TraceError, match="give work or total_steps, not both"):
        read_yaml_jobs(p)


def _deprecations(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "computepool.deprecation"]


def test_old_names_are_read_with_one_deprecation_per_file(tmp_path, caplog):
    p = tmp_path / "old.yaml"
    p.write_text(
        "defaults: {total_steps: 10}\n"
        "jobs:\n"
        "  - {id: a, accel_per_worker: 2}\n"
        "  - {id: b, accel_per_worker: 4, accelerators: [H100]}\n"
    )
    with caplog.at_level("WARNING", logger="computepool.deprecation"):
        a, b = read_yaml_jobs(p)
    assert (a.accel_per_worker, b.accelerators, b.total_steps) == (2.0, ("H100",), 10.0)
    (msg,) = _deprecations(caplog)  # once for the file, not once per job
    assert str(p) in msg
    for old, new in [
        ("accel_per_worker", "accelerators_per_worker"),
        ("accelerators", "accelerator_types"),
        ("total_steps", "work"),
    ]:
        assert f"'{old}' (use '{new}')" in msg


def test_new_names_bring_no_deprecation(tmp_path, caplog):
    p = tmp_path / "new.yaml"
    p.write_text(
        "jobs:\n  - {id: a, accelerators_per_worker: 2, accelerator_types: [H100], work: 5}\n"
    )
    with caplog.at_level("WARNING", logger="computepool.deprecation"):
        read_yaml_jobs(p)
    assert _deprecations(caplog) == []


def test_jsonl_old_names_are_deprecated_once(tmp_path, caplog):
    p = tmp_path / "old.jsonl"
    p.write_text('{"id": "a", "total_steps": 1}\n{"id": "b", "total_steps": 2}\n')
    with caplog.at_level("WARNING", logger="computepool.deprecation"):
        read_jsonl_jobs(p)
    (msg,) = _deprecations(caplog)
    assert str(p) in msg and "'total_steps' (use 'work')" in msg


def test_the_cli_shows_the_deprecation_on_stderr(tmp_path):
    p = tmp_path / "old.yaml"
    p.write_text("jobs:\n  - {id: a, total_steps: 10}\n")
    r = subprocess.run(
        [sys.executable, "-m", "computepool.cli.app", "validate", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "warning:" in err and str(p) in err and "'total_steps' (use 'work')" in err
    assert "deprecat" not in r.stdout
