from __future__ import annotations

import math

import numpy as np
import pytest

from computepool.traces import TraceError, load_workload, read_gavel_trace, read_gavel_trace_dir

GOOD10 = (
    "ResNet-18 (batch size 64)\tpython3 main.py\timage_classification/cifar10\t--num_steps\t1\t1000\t2\t1\t-1.000000\t0\n"
    "LM (batch size 20)\tpython main.py\tlanguage_modeling\t--steps\t1\t500\t1\t5\t2.0\t30\n"
)


def test_old_7_column_layout(data_dir, throughputs):
    w = read_gavel_trace(data_dir / "gavel_msr_795a4c.trace", throughputs)
    assert len(w) == 3
    assert [w.classes[k].job_type for k in w.job_class] == [
        "Transformer (batch size 128)",
        "Recommendation (batch size 8192)",
        "Transformer (batch size 256)",
    ]
    assert list(w.total_steps) == [79561, 1066, 4726]
    assert list(w.arrival) == [0.0, 1511.0, 3362.0]
    assert list(w.scale_factor) == [1, 1, 1]
    assert w.ids == ["0", "1", "2"]


def test_new_10_column_layout(data_dir, throughputs):
    w = read_gavel_trace(data_dir / "gavel_physical_small_test.trace", throughputs)
    assert len(w) == 20
    assert w.classes[w.job_class[0]].key == ("Transformer (batch size 128)", 2)
    assert w.total_steps[0] == 346
    assert np.all(np.isnan(w.deadline))  # SLO -1 = none
    assert np.all(w.weight == 1)


def test_priority_and_slo_columns(tmp_path, throughputs):
    p = tmp_path / "t.trace"
    p.write_text(GOOD10)
    w = read_gavel_trace(p, throughputs)
    assert list(w.weight) == [1.0, 5.0]
    assert math.isnan(w.deadline[0])
    v100 = throughputs.rate("LM (batch size 20)", 1, "V100")
    assert w.deadline[1] == pytest.approx(2.0 * 500 / v100)


def test_folder_one_tenant_per_vc(data_dir, tmp_path, throughputs):
    for name in ("gavel_msr_795a4c.trace", "gavel_msr_925e2b.trace"):
        (tmp_path / name.removeprefix("gavel_msr_")).write_text((data_dir / name).read_text())
    w = read_gavel_trace_dir(tmp_path, throughputs)
    assert len(w) == 7
    assert sorted(w.tenants) == ["795a4c", "925e2b"]
    assert "795a4c/0" in w.ids and "925e2b/3" in w.ids
    assert np.all(np.diff(w.arrival) >= 0)
    assert len(load_workload(str(tmp_path), throughputs=throughputs)) == 7


@pytest.mark.parametrize(
    ("line", "field", "why"),
    [
        ("A3C\tcmd\t--x\t0\t100\t0", "columns", "6 tab-separated columns"),
        ("A3C\tcmd\t--x\t0\tmany\t0\t1", "total_steps", "not a number"),
        ("A3C\tcmd\t--x\t0\t-5\t0\t1", "total_steps", "below the minimum"),
        ("A3C\tcmd\t--x\t0\t100\t-1\t1", "arrival_time_s", "below the minimum"),
        ("A3C\tcmd\t--x\t0\t100\t0\t0", "scale_factor", "below the minimum"),
        ("A3C\tcmd\t--x\t0\t100\t0\t1.5", "scale_factor", "not a whole number"),
        ("A3C\tcmd\t--x\tyes\t100\t0\t1", "needs_data_dir", "not 0 or 1"),
        ("ResNet-9000\tcmd\t--x\t0\t100\t0\t1", "job_type", "unknown job type"),
        ("A3C\tcmd\tdir\t--x\t0\t100\t1\t0\t-1\t0", "priority_weight", "must be > 0"),
    ],
)
def test_malformed_lines(tmp_path, throughputs, line, field, why, assert_names):
    p = tmp_path / "bad.trace"
    p.write_text("A3C\tcmd\t--x\t0\t100\t0\t1\n\n" + line + "\n")
    with pytest.raises(TraceError) as exc:
        read_gavel_trace(p, throughputs)
    assert_names(str(exc.value), p, 3, field)
    assert why in str(exc.value)
    assert (exc.value.line, exc.value.field) == (3, field)


def test_missing_file(tmp_path, throughputs):
    with pytest.raises(TraceError, match="cannot read"):
        read_gavel_trace(tmp_path / "nope.trace", throughputs)
