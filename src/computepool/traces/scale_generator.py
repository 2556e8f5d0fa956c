"""Large synthetic workloads for pool-scale runs (10^5 accelerators, 10^6 jobs), vectorised.

The job mix follows Gavel's generator (see ``gavel_generator``), drawn with NumPy instead of
Python's ``random`` so a million jobs take well under a second and no per-job object exists:

* scale factor 1 / 2 / 4 / 8 with probability 0.7 / 0.1 / 0.15 / 0.05;
* job type uniform over Gavel's 26 models for 1-accelerator jobs and over its 19 distributed
  models for larger ones (``types=gavel``), or a single ``generic`` type (``types=generic``);
* duration on the reference accelerator: ``60 * 10 ** U(1.5, 3)`` s with probability 0.8,
  else ``60 * 10 ** U(3, 4)`` s (heavy tail: mean 16.8 h, median 4.6 h);
* Poisson arrivals, the first at 0 s, at the rate that offers ``load`` x the capacity of
  ``accelerators`` reference accelerators: ``rate = load * accelerators / E[scale * duration]``
  with the analytic ``E[scale] = 1.9`` and ``E[duration] ~ 60 361 s``. On a pool of faster
  chips the same workload loads it proportionally less;
* tenants ``t0 .. t{n-1}`` drawn uniformly (``tenants=n``; default one tenant ``default``).

Spec: ``scale:jobs=1000000,accelerators=100000,load=0.85,seed=0[,types=gavel|generic]
[,reference=V100][,tenants=1][,multi_gpu=true]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from computepool.model.job import JobKind
from computepool.model.throughput import GENERIC, Throughputs
from computepool.model.workload import JobClass, Workload
from computepool.traces.columns import resolve_throughputs
from computepool.traces.errors import TraceError
from computepool.traces.gavel_job_table import job_table
from computepool.traces.spec import check_known, opt_bool, opt_float, opt_int, split_spec

SCALE_FACTORS = (1, 2, 4, 8)
SCALE_PROBS = (0.7, 0.1, 0.15, 0.05)
SHORT_P = 0.8
SHORT_EXP, LONG_EXP = (1.5, 3.0), (3.0, 4.0)


def _mean_log_uniform(lo: float, hi: float) -> float:
    """E[60 * 10**U(lo, hi)]."""
    return 60.0 * (10**hi - 10**lo) / ((hi - lo) * math.log(10))


MEAN_DURATION_S = SHORT_P * _mean_log_uniform(*SHORT_EXP) + (1 - SHORT_P) * _mean_log_uniform(
    *LONG_EXP
)
MEAN_SCALE = sum(s * p for s, p in zip(SCALE_FACTORS, SCALE_PROBS, strict=True))


@dataclass(frozen=True)
class ScaleSpec:
    jobs: int = 1_000_000
    accelerators: int = 100_000
    load: float = 0.85
    seed: int = 0
    types: str = "gavel"
    reference: str = "V100"
    tenants: int = 1
    multi_gpu: bool = True

    def arrival_rate(self) -> float:
        """Jobs per second offering ``load`` x the pool's reference capacity."""
        mean_sf = MEAN_SCALE if self.multi_gpu else 1.0
        return self.load * self.accelerators / (mean_sf * MEAN_DURATION_S)


def _classes(types: str) -> tuple[list[JobClass], np.ndarray, np.ndarray]:
    """Classes, and per scale factor the first class index and the number of types."""
    if types == "generic":
        models_1 = models_n = [GENERIC]
    else:
        table = job_table("2020")
        models_1 = [t.model for t in table]
        models_n = [t.model for t in table if t.distributed]
    classes: list[JobClass] = []
    offset, count = [], []
    for sf in SCALE_FACTORS:
        models = models_1 if sf == 1 else models_n
        offset.append(len(classes))
        count.append(len(models))
        classes.extend(JobClass(m, sf, JobKind.TRAIN) for m in models)
    return classes, np.array(offset), np.array(count)


def generate_scale(spec: ScaleSpec, throughputs: Throughputs | None = None) -> Workload:
    if spec.jobs < 0 or spec.accelerators <= 0 or not 0 < spec.load <= 1 or spec.tenants < 1:
        raise ValueError(
            f"invalid scale spec {spec}: need jobs>=0, accelerators>0, 0<load<=1, tenants>=1"
        )
    if spec.types not in ("gavel", "generic"):
        raise ValueError(f"types must be 'gavel' or 'generic', got {spec.types!r}")
    t = resolve_throughputs(throughputs)
    classes, offset, count = _classes(spec.types)
    rates = np.array([t.rate(c.job_type, c.scale_factor, spec.reference) for c in classes])
    if np.any(rates <= 0):
        bad = classes[int(np.argmin(rates))]
        raise ValueError(f"no rate for {bad.key} on reference accelerator {spec.reference!r}")
    n = spec.jobs
    rng = np.random.default_rng(spec.seed)
    if spec.multi_gpu:
        sf_ix = np.searchsorted(np.cumsum(SCALE_PROBS), rng.random(n), side="right").astype(
            np.int32
        )
        sf_ix = np.minimum(sf_ix, len(SCALE_FACTORS) - 1)
    else:
        sf_ix = np.zeros(n, dtype=np.int32)
    job_class = (offset[sf_ix] + (rng.random(n) * count[sf_ix]).astype(np.int64)).astype(np.int32)
    short = rng.random(n) < SHORT_P
    lo = np.where(short, SHORT_EXP[0], LONG_EXP[0])
    hi = np.where(short, SHORT_EXP[1], LONG_EXP[1])
    duration = 60.0 * np.power(10.0, lo + (hi - lo) * rng.random(n))
    gaps = rng.exponential(1.0 / spec.arrival_rate(), n)
    arrival = np.cumsum(gaps) - gaps[0] if n else gaps
    if spec.tenants > 1:
        tenant = rng.integers(0, spec.tenants, n, dtype=np.int32)
        tenants = [f"t{i}" for i in range(spec.tenants)]
    else:
        tenant, tenants = np.zeros(n, dtype=np.int32), ["default"]
    return Workload(
        arrival=arrival,
        job_class=job_class,
        total_steps=duration * rates[job_class],
        classes=classes,
        tenant=tenant,
        tenants=tenants,
        name=format_scale_spec(spec),
    )


_KNOWN = {"jobs", "accelerators", "load", "seed", "types", "reference", "tenants", "multi_gpu"}


def parse_scale_spec(text: str) -> ScaleSpec:
    """``scale:jobs=1000000,accelerators=100000,load=0.85,seed=0`` -> ``ScaleSpec``."""
    opts = split_spec(text, "scale")
    check_known(text, opts, _KNOWN)
    d = ScaleSpec()
    spec = ScaleSpec(
        jobs=opt_int(text, opts, "jobs", d.jobs),
        accelerators=opt_int(text, opts, "accelerators", d.accelerators),
        load=opt_float(text, opts, "load", d.load) or 0.0,
        seed=opt_int(text, opts, "seed", d.seed),
        types=opts.get("types", d.types),
        reference=opts.get("reference", d.reference),
        tenants=opt_int(text, opts, "tenants", d.tenants),
        multi_gpu=opt_bool(text, opts, "multi_gpu", d.multi_gpu),
    )
    checks = [
        ("jobs", spec.jobs >= 0, "must be >= 0"),
        ("accelerators", spec.accelerators > 0, "must be > 0"),
        ("load", 0 < spec.load <= 1, "must be in (0, 1]"),
        ("tenants", spec.tenants >= 1, "must be >= 1"),
        ("types", spec.types in ("gavel", "generic"), "must be 'gavel' or 'generic'"),
    ]
    for field, ok, why in checks:
        if not ok:
            raise TraceError(text, why, field=field)
    return spec


def format_scale_spec(spec: ScaleSpec) -> str:
    return (
        f"scale:jobs={spec.jobs},accelerators={spec.accelerators},load={spec.load!r},seed={spec.seed},"
        f"types={spec.types},reference={spec.reference},tenants={spec.tenants},"
        f"multi_gpu={str(spec.multi_gpu).lower()}"
    )
