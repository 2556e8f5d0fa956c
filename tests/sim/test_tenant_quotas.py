"""Quotas, cohorts, borrowing, reclaim and budgets in the simulator: the workload file's
``tenants:`` section gates every simulated round through the live pool's ``QuotaGate``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.model.tenant import FlavorQuota, parse_flavor_quota
from computepool.sim.run import SimConfig
from computepool.sim.runner import load_inputs, run_policy
from computepool.traces.errors import TraceError
from computepool.traces.jobfile import read_yaml_tenants


def _file(tmp_path: Path, tenants: str, jobs: str) -> Path:
    p = tmp_path / "w.yaml"
    p.write_text(
        "defaults: {job_type: generic, accelerators: [K80], reference_accelerator: K80}\n"
        + textwrap.dedent(tenants)
        + textwrap.dedent(jobs)
    )
    return p


def _run(path: Path, policy: str = "fifo", **cfg):
    inputs = load_inputs("gavel-36x3", str(path))
    return inputs, run_policy(inputs, policy, SimConfig(round_seconds=60.0, **cfg))


def test_parse_flavor_quota_forms():
    assert parse_flavor_quota("8:4") == FlavorQuota(8.0, 4.0, None)
    assert parse_flavor_quota("8::2") == FlavorQuota(8.0, None, 2.0)
    assert parse_flavor_quota(16) == FlavorQuota(16.0)
    for bad in ("", "x", "1:2:3:4", "-1", "inf", True):
        with pytest.raises(ValueError, match="NOMINAL"):
            parse_flavor_quota(bad)


def test_nominal_quota_caps_a_tenant_without_a_cohort(tmp_path):
    path = _file(
        tmp_path,
        """
        tenants:
          - {name: a, quotas: {K80: 8}}
        """,
        """
        jobs:
          - {tenant: a, workers: 4, duration_hours: 1}
          - {tenant: a, workers: 4, duration_hours: 1}
          - {tenant: a, workers: 4, duration_hours: 1}
        """,
    )
    _, res = _run(path)
    assert np.count_nonzero(res.first_start == 0.0) == 2  # 8 of the 36 K80 at a time
    assert res.first_start[2] >= 3600.0
    # without the section the same jobs all start at once
    plain = tmp_path / "plain.yaml"
    plain.write_text("\n".join(ln for ln in path.read_text().splitlines() if "quotas" not in ln
                               and "tenants:" not in ln))  # fmt: skip
    _, free = _run(plain)
    assert (free.first_start == 0.0).all()


def test_borrowing_then_reclaim_within_the_cohort(tmp_path):
    path = _file(
        tmp_path,
        """
        tenants:
          - {name: a, cohort: c, quotas: {K80: "8:8"}}
          - {name: b, cohort: c, quotas: {K80: 8}}
        """,
        """
        jobs:
          - {id: a1, tenant: a, workers: 8, duration_hours: 2}
          - {id: a2, tenant: a, workers: 8, duration_hours: 2, arrival: 1}
          - {id: a3, tenant: a, workers: 8, duration_hours: 2, arrival: 2}
          - {id: b1, tenant: b, workers: 8, duration_hours: 1, arrival_hours: 0.5}
        """,
    )
    _, res = _run(path)
    # a runs its nominal 8 and borrows 8 more (b's idle quota), not 24: its borrowing limit
    assert res.first_start[0] == 0.0 and res.first_start[1] == pytest.approx(60.0)
    assert res.first_start[2] >= 2 * 3600.0 - 1
    # b's arrival reclaims its lent quota: a's borrowing job is preempted within a round
    assert res.first_start[3] == pytest.approx(1800.0, abs=60.0)
    assert res.preemptions[1] == 1 and res.preemptions[0] == 0


def test_budget_stops_new_starts_running_jobs_finish(tmp_path):
    path = _file(
        tmp_path,
        """
        tenants:
          - {name: a, budget_accel_hours: 6}
          - {name: b}
        """,
        """
        jobs:
          - {tenant: a, workers: 4, duration_hours: 1}
          - {tenant: a, workers: 4, duration_hours: 1, arrival_hours: 1.5}
          - {tenant: a, workers: 4, duration_hours: 1, arrival_hours: 3}
          - {tenant: b, workers: 4, duration_hours: 1, arrival_hours: 3}
        """,
    )
    _, res = _run(path, until=8 * 3600.0)
    assert np.isfinite(res.end[:2]).all()  # 4 h, then 8 h spent: the second ran to its end
    assert np.isnan(res.first_start[2])  # 8 >= 6 accelerator-hours: a starts nothing new
    assert np.isfinite(res.end[3])  # b has no budget


def test_bad_tenants_section_names_file_line_and_field(tmp_path):
    path = _file(
        tmp_path,
        """
        tenants:
          - name: a
            quotas: {K80: "lots"}
        """,
        "jobs:\n  - {tenant: a, duration_hours: 1}\n",
    )
    with pytest.raises(TraceError) as err:
        read_yaml_tenants(path)
    msg = str(err.value)
    assert str(path) in msg and ":4" in msg and "tenants.0.quotas" in msg and "NOMINAL" in msg
    res = CliRunner().invoke(app, ["simulate", "--pool", "gavel-36x3", "--workload", str(path)])
    assert res.exit_code != 0 and "NOMINAL" in res.output


def test_cli_simulate_reads_the_tenants_section(tmp_path):
    path = _file(
        tmp_path,
        "tenants:\n  - {name: a, quotas: {K80: 4}}\n",
        "jobs:\n" + "".join("  - {tenant: a, workers: 4, duration_hours: 1}\n" for _ in range(3)),
    )
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        ["simulate", "--pool", "gavel-36x3", "--workload", str(path), "--policy", "fifo",
         "--round-seconds", "60", "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(out.read_text())
    assert doc["makespan_hours"] == pytest.approx(3.0, rel=0.05)  # one job at a time
