"""Philly, openb and Tiresias CSV readers."""

from __future__ import annotations

import numpy as np
import pytest

from computepool.traces import (
    TraceError,
    pods_to_workload,
    read_openb,
    read_openb_pods,
    read_philly,
    read_tiresias,
)

PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
OPENB_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
TIRESIAS_HEADER = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n"


def test_philly_excerpt(data_dir, throughputs):
    w = read_philly(data_dir / "philly_excerpt.csv", throughputs)
    assert len(w) == 23
    assert {c.job_type for c in w.classes} == {"generic"}
    assert set(w.scale_factor) == {1, 4, 8}
    assert w.arrival.min() == 0.0 and np.all(np.diff(w.arrival) >= 0)
    # row 0: 2017-10-09 07:01:55, 66 s, 1 GPU, VC 11cb48
    i = w.ids.index("0")
    assert w.tenants[w.tenant[i]] == "11cb48"
    assert w.total_steps[i] == pytest.approx(66.0 * throughputs.rate("generic", 1, "V100"))
    # earliest row is 2017-09-29 07:58:32 (row 2); row 0 is 9 days 23:03:23 later
    assert w.arrival[i] == (9 * 86400 + 23 * 3600 + 3 * 60 + 23)
    k = w.ids.index("20")  # 8 GPUs, 193256 s
    assert w.scale_factor[k] == 8
    assert w.total_steps[k] == pytest.approx(193256.0 * throughputs.rate("generic", 8, "V100"))


def test_philly_reference_accelerator(data_dir, throughputs):
    v100 = read_philly(data_dir / "philly_excerpt.csv", throughputs)
    k80 = read_philly(data_dir / "philly_excerpt.csv", throughputs, reference="K80")
    ratio = throughputs.rate("generic", 1, "K80") / throughputs.rate("generic", 1, "V100")
    assert np.allclose(k80.total_steps, v100.total_steps * ratio)
    with pytest.raises(TraceError, match="reference_accelerator"):
        read_philly(data_dir / "philly_excerpt.csv", throughputs, reference="TPUv9")


@pytest.mark.parametrize(
    ("row", "field", "why"),
    [
        ("2017-10-09 07:01:55,66.0,1,66.0", "columns", "has 4 columns"),
        ("2017-10-09 07:01:55,-66.0,1,66.0,11cb48", "duration", "below the minimum"),
        ("2017-10-09 07:01:55,sixty,1,66.0,11cb48", "duration", "not a number"),
        ("09/10/2017 07:01,66.0,1,66.0,11cb48", "timestamp", "not a 'YYYY-MM-DD HH:MM:SS'"),
        ("2017-10-09 07:01:55,66.0,0,66.0,11cb48", "num_gpus", "below the minimum"),
        ("2017-10-09 07:01:55,66.0,1,66.0,", "cluster", "is empty"),
    ],
)
def test_philly_malformed(tmp_path, throughputs, row, field, why, assert_names):
    p = tmp_path / "philly.csv"
    p.write_text(PHILLY_HEADER + "2017-10-09 07:01:55,66.0,1,66.0,11cb48\n" + row + "\n")
    with pytest.raises(TraceError) as exc:
        read_philly(p, throughputs)
    assert_names(str(exc.value), p, 3, field)
    assert why in str(exc.value)


def test_philly_missing_header_column(tmp_path, throughputs, assert_names):
    p = tmp_path / "philly.csv"
    p.write_text("timestamp,duration,gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1,66.0,a\n")
    with pytest.raises(TraceError) as exc:
        read_philly(p, throughputs)
    assert_names(str(exc.value), p, 1, "num_gpus")


def test_openb_pod_table(data_dir):
    pods = read_openb_pods(data_dir / "openb_excerpt.csv")
    assert len(pods) == 18
    assert pods.name[1] == "openb-pod-0001"
    assert pods.cpu_milli[1] == 6000 and pods.memory_mib[1] == 12288
    assert pods.gpu_milli[1] == 460 and pods.gpu_request[1] == pytest.approx(0.46)
    assert pods.allowed_models(0) == ()
    assert sorted(set(pods.num_gpu.tolist())) == [0, 1, 2, 4, 8]
    assert pods.gpu_request[pods.num_gpu == 8].tolist() == [8.0, 8.0]
    assert np.isnan(pods.scheduled_time[-1]) and pods.pod_phase[-1] == "Pending"
    assert pods.duration[0] == 12537496
    assert pods.cpu_milli.dtype == np.int64 and pods.num_gpu.dtype == np.int32


def test_openb_gpu_spec_and_workload(tmp_path, throughputs):
    p = tmp_path / "pods.csv"
    p.write_text(
        OPENB_HEADER
        + "a,1000,1024,1,500,V100M16|V100M32,LS,Running,10,110,10\n"
        + "b,1000,1024,0,0,,BE,Running,20,30,20\n"
        + "c,1000,1024,2,1000,,LS,Running,30,,30\n"
        + "d,1000,1024,4,1000,T4,LS,Running,40,1040,41\n"
    )
    pods = read_openb_pods(p)
    assert pods.allowed_models(0) == ("V100M16", "V100M32")
    assert pods.allowed_models(1) == () and pods.allowed_models(3) == ("T4",)
    w = pods_to_workload(pods, throughputs)
    assert w.ids == ["a", "d"]  # CPU-only b and open-ended c are left out
    assert w.classes[w.job_class[0]].accelerators == ("V100M16", "V100M32")
    assert list(w.arrival) == [0.0, 30.0]
    assert w.total_steps[1] == pytest.approx(1000 * throughputs.rate("generic", 4, "V100"))
    assert len(read_openb(p, throughputs)) == 2


@pytest.mark.parametrize(
    ("row", "field", "why"),
    [
        ("x,1000,1024,1,1500,,LS,Running,0,10,0", "gpu_milli", "exceeds 1000"),
        ("x,1000,1024,2,500,,LS,Running,0,10,0", "gpu_milli", "sharing needs num_gpu 1"),
        ("x,1000,1024,one,1000,,LS,Running,0,10,0", "num_gpu", "not a number"),
        ("x,1000,1024,1,1000,,LS,Running,50,10,0", "deletion_time", "before creation_time"),
        ("x,-1,1024,1,1000,,LS,Running,0,10,0", "cpu_milli", "below the minimum"),
        ("x,1000,1024,1,1000,,LS,Running,0,10", "columns", "has 10 columns"),
    ],
)
def test_openb_malformed(tmp_path, row, field, why, assert_names):
    p = tmp_path / "pods.csv"
    p.write_text(OPENB_HEADER + row + "\n")
    with pytest.raises(TraceError) as exc:
        read_openb_pods(p)
    assert_names(str(exc.value), p, 2, field)
    assert why in str(exc.value)


def test_tiresias(data_dir, throughputs):
    w = read_tiresias(data_dir / "tiresias_60_job.csv", throughputs)
    assert len(w) == 60
    assert w.ids[:3] == ["0", "1", "2"]
    assert list(w.scale_factor[:3]) == [1, 8, 2]
    assert list(w.arrival[:3]) == [0.0, 30.0, 53.0]
    assert w.total_steps[0] == pytest.approx(164 * throughputs.rate("generic", 1, "V100"))


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("1,1,5,10,vgg,-3,1", "duration"),
        ("1,x,5,10,vgg,3,1", "num_gpu"),
        ("0,1,5,10,vgg,3,1", "job_id"),
    ],
)
def test_tiresias_malformed(tmp_path, throughputs, row, field, assert_names):
    p = tmp_path / "t.csv"
    p.write_text(TIRESIAS_HEADER + "0,1,0,10,vgg19,5,1\n" + row + "\n")
    with pytest.raises(TraceError) as exc:
        read_tiresias(p, throughputs)
    assert_names(str(exc.value), p, 3, field)
