from __future__ import annotations

import shutil

import pytest

from computepool.traces import TraceError, detect_format, load_workload


@pytest.mark.parametrize(
    ("name", "fmt", "n"),
    [
        ("gavel_msr_795a4c.trace", "gavel", 3),
        ("gavel_physical_small_test.trace", "gavel", 20),
        ("philly_excerpt.csv", "philly", 23),
        ("openb_excerpt.csv", "openb", 16),
        ("tiresias_60_job.csv", "tiresias", 60),
    ],
)
def test_detects_and_loads(data_dir, throughputs, name, fmt, n):
    assert detect_format(data_dir / name) == fmt
    assert len(load_workload(str(data_dir / name), throughputs=throughputs)) == n


def test_detects_by_content_without_extension(data_dir, tmp_path, throughputs):
    for name, fmt in [("gavel_msr_795a4c.trace", "gavel"), ("tiresias_60_job.csv", "tiresias")]:
        target = tmp_path / name.split(".")[0]
        shutil.copy(data_dir / name, target)
        assert detect_format(target) == fmt


def test_forced_format(data_dir, throughputs):
    w = load_workload(
        str(data_dir / "tiresias_60_job.csv"), fmt="tiresias", throughputs=throughputs
    )
    assert len(w) == 60
    with pytest.raises(TraceError, match="header lacks column 'timestamp'"):
        load_workload(str(data_dir / "tiresias_60_job.csv"), fmt="philly", throughputs=throughputs)


def test_unknown_format(tmp_path, assert_names):
    p = tmp_path / "mystery.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TraceError) as exc:
        load_workload(str(p))
    assert_names(str(exc.value), p, 1, "format")
    assert "unknown workload format" in str(exc.value)
    with pytest.raises(TraceError, match="unknown format 'parquet'"):
        load_workload(str(p), fmt="parquet")


def test_missing_file(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        load_workload(str(tmp_path / "absent.yaml"))


def test_bad_scale_spec():
    with pytest.raises(TraceError) as exc:
        load_workload("scale:jobs=10,load=1.5")
    assert exc.value.field == "load"
