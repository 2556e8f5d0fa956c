"""A workload file's job takes the live API's field names too (one job contract)."""

from __future__ import annotations

import pytest

from computepool.traces.errors import TraceError
from computepool.traces.jobfile import read_yaml_jobs


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
