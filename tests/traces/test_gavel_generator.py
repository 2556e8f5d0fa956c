"""Gavel's synthetic trace: pinned jobs of seed 0 and the distribution's properties.

The pinned values were derived by following Gavel's source by hand for seed 0 (Random(2):
uniform -> 0.956 (scale-factor draw), random -> 0.948 (long job), uniform(3, 4) -> 3.0566, so
duration 60 * 10**3.0566 = 68344.35 s; choice index 2 of the 2020 table = ResNet-18 bs64;
Random(3): first gap -log(1 - 0.23796) * 642.857 = 174.70 s) and by cross-checking against a
count measured by running Gavel itself (research/gavel-anchor-run.md section 4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from computepool.traces import TraceError, generate_gavel, load_workload, parse_gavel_spec
from computepool.traces.gavel_job_table import job_table

PUBLISHED = "gavel:rate=5.6,jobs=5000,multi_gpu=false,seed=0"

# (job type, duration s, arrival s) for seed 0 at 5.6 jobs/h, single-GPU.
SEED0 = {
    0: ("ResNet-18 (batch size 64)", 68344.35010595087, 0.0),
    1: ("Transformer (batch size 16)", 31016.60914593223, 174.7043377930725),
    2: ("Recommendation (batch size 1024)", 2146.6088374387864, 679.8391625207828),
    3: ("Recommendation (batch size 4096)", 7386.674819745945, 976.8162111831339),
    4: ("A3C", 6858.69820697011, 1572.1913889238363),
    4000: ("Recommendation (batch size 1024)", 7991.43003162255, 2554428.9317805055),
}


@pytest.fixture(scope="module")
def published(throughputs):
    return generate_gavel(parse_gavel_spec(PUBLISHED), throughputs)


def job_types(w) -> list[str]:
    return [w.classes[k].job_type for k in w.job_class]


def test_job_table_orders():
    t2020, head = job_table("2020"), job_table("head")
    assert len(t2020) == len(head) == 26
    assert t2020[14].model == "A3C" and head[24].model == "A3C"
    assert t2020[13].model == "Transformer (batch size 256)"
    assert sum(t.distributed for t in t2020) == 19
    assert {t.model for t in t2020} == {t.model for t in head}


@pytest.mark.parametrize("i", sorted(SEED0))
def test_seed0_pinned_jobs(published, throughputs, i):
    w = published.workload
    job_type, duration, arrival = SEED0[i]
    cls = w.classes[w.job_class[i]]
    assert (cls.job_type, cls.scale_factor) == (job_type, 1)
    assert published.duration[i] == pytest.approx(duration, rel=1e-13)
    assert w.arrival[i] == pytest.approx(arrival, rel=1e-13, abs=0)
    assert w.total_steps[i] == pytest.approx(
        duration * throughputs.rate(job_type, 1, "V100"), rel=1e-13
    )
    assert w.job_id(i) == str(i)


def test_2020_and_head_orders_differ_as_measured_with_gavel(published, throughputs):
    """Gavel itself, run at 2b47eb0 and HEAD, maps 2144 of jobs 0-4999 (423 of 4000-4999) apart."""
    head = generate_gavel(parse_gavel_spec(PUBLISHED + ",order=head"), throughputs)
    a, b = job_types(published.workload), job_types(head.workload)
    differ = [i for i in range(5000) if a[i] != b[i]]
    assert len(differ) == 2144
    assert sum(4000 <= i < 5000 for i in differ) == 423
    # arrivals and durations do not depend on the table order
    assert np.array_equal(published.workload.arrival, head.workload.arrival)
    assert np.array_equal(published.duration, head.duration)


def test_multi_gpu_draw_happens_even_when_off(throughputs):
    """Turning multi-GPU on changes scale factors, never the durations or the other draws."""
    on = generate_gavel(
        parse_gavel_spec("gavel:rate=5.6,jobs=5,seed=0,multi_gpu=true"), throughputs
    )
    w = on.workload
    got = [(w.classes[k].job_type, w.classes[k].scale_factor) for k in w.job_class]
    assert got[0] == ("ResNet-18 (batch size 64)", 8)  # scale draw 0.956 -> 8
    assert got[4] == ("LM (batch size 10)", 4)  # A3C is not distributed: choice is redrawn
    assert on.duration[:4] == pytest.approx([SEED0[i][1] for i in range(4)], rel=1e-13)


def test_duration_mix_and_rate(throughputs):
    t = generate_gavel(parse_gavel_spec("gavel:rate=5.6,jobs=20000,seed=1"), throughputs)
    d = t.duration
    long_share = np.mean(d > 60 * 10**3)
    assert long_share == pytest.approx(0.2, abs=0.01)
    assert d.min() >= 60 * 10**1.5 and d.max() <= 60 * 10**4
    short = np.log10(d[d <= 60_000] / 60)
    assert np.mean(short) == pytest.approx(2.25, abs=0.01)  # U(1.5, 3)
    gaps = np.diff(t.workload.arrival)
    assert np.mean(gaps) == pytest.approx(3600 / 5.6, rel=0.03)
    assert t.workload.arrival[0] == 0.0
    types = job_types(t.workload)
    assert len(set(types)) == 26


def test_scale_factor_probabilities(throughputs):
    t = generate_gavel(
        parse_gavel_spec("gavel:rate=5.6,jobs=40000,seed=2,multi_gpu=true"), throughputs
    )
    w = t.workload
    sf = w.scale_factor
    for s, p in [(1, 0.7), (2, 0.1), (4, 0.15), (8, 0.05)]:
        assert np.mean(sf == s) == pytest.approx(p, abs=0.01)
    non_dist = {tt.model for tt in job_table("2020") if not tt.distributed}
    multi = {w.classes[k].job_type for k in w.job_class[sf > 1]}
    assert multi and not (multi & non_dist)
    assert len(multi) == 19


def test_priority_and_slo(throughputs):
    t = generate_gavel(
        parse_gavel_spec("gavel:rate=5.6,jobs=20000,seed=0,priority=true,slo=true"), throughputs
    )
    assert np.mean(t.priority_weight == 5.0) == pytest.approx(0.2, abs=0.01)
    assert set(np.unique(t.slo)) == {1.2, 2.0, 10.0}
    assert np.allclose(t.workload.deadline, t.slo * t.duration)
    assert np.array_equal(t.workload.weight, t.priority_weight)
    # the priority draw follows the choice, so job 0 keeps its type and duration
    w = t.workload
    assert w.classes[w.job_class[0]].job_type == SEED0[0][0]
    assert t.duration[0] == pytest.approx(SEED0[0][1], rel=1e-13)


def test_lam_zero_and_fixed_duration(throughputs):
    t = generate_gavel(parse_gavel_spec("gavel:lam=0,jobs=50,fixed_duration=3600"), throughputs)
    assert np.all(t.workload.arrival == 0)
    assert np.all(t.duration == 3600)


def test_lam_equals_rate(throughputs):
    a = generate_gavel(parse_gavel_spec("gavel:rate=5.6,jobs=10"), throughputs).workload
    b = generate_gavel(parse_gavel_spec(f"gavel:lam={3600 / 5.6!r},jobs=10"), throughputs).workload
    assert np.array_equal(a.arrival, b.arrival)
    assert a.arrival[1] == pytest.approx(-math.log(1 - 0.23796462709189137) * 3600 / 5.6, rel=1e-6)


def test_load_workload_spec():
    w = load_workload("gavel:rate=5.6,jobs=7,seed=0")
    assert len(w) == 7 and w.name.startswith("gavel:")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("gavel:rate=fast,jobs=10", "rate"),
        ("gavel:rate=5.6,jobz=10", "jobz"),
        ("gavel:jobs=10", "rate"),
        ("gavel:rate=5.6,multi_gpu=maybe", "multi_gpu"),
        ("gavel:rate=5.6,order=2019", "order"),
        ("gavel:rate=5.6,jobs=1.5", "jobs"),
    ],
)
def test_bad_specs(spec, field):
    with pytest.raises(TraceError) as exc:
        parse_gavel_spec(spec)
    assert spec in str(exc.value) and repr(field) in str(exc.value)
    assert exc.value.field == field
