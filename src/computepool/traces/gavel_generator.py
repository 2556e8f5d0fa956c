"""Gavel's synthetic workload, draw for draw (Narayanan et al., OSDI'20; stanford-futuredata/gavel).

Facts taken from Gavel's source (MIT; no code copied), for the simulator run behind the published
continuous-job numbers (``scheduler/scheduler.py: simulate``, ``scheduler/utils.py:
generate_job``, ``scheduler/job_table.py``):

* Three independent ``random.Random`` streams, seeded ``seed+2`` (job properties), ``seed+3``
  (inter-arrival times) and ``seed+6`` (SLOs, only with ``--assign_SLOs``).
* Per job, from the ``seed+2`` stream and in this order:
  1. ``uniform(0, 1)`` -> scale factor: ``[0.7, 0.8]`` -> 2, ``(0.8, 0.95]`` -> 4, ``>= 0.95`` ->
     8, else 1. The draw happens **even when multi-GPU jobs are off** (the result is then
     replaced by 1), so it always consumes one number.
  2. ``random() >= 0.8`` -> long job: ``60 * 10 ** uniform(3, 4)`` s, else short:
     ``60 * 10 ** uniform(1.5, 3)`` s (skipped entirely with a fixed duration).
  3. ``choice(JobTable)``, repeated until the template can run distributed or the scale factor
     is 1 (so multi-GPU jobs are spread uniformly over the 19 distributed types).
  4. only with multi-priority jobs: ``uniform(0, 1) <= 0.2`` -> priority weight 5, else 1.
* ``total_steps = duration * isolated V100 throughput of (job type, scale factor)``, unrounded.
* Arrivals: job 0 arrives at 0 s without a draw; after each job, the next arrives
  ``-log(1 - random()) / (1 / lam)`` s later (``seed+3`` stream), ``lam`` being the mean
  inter-arrival time in seconds (``3600 / rate`` for a rate in jobs per hour; ``lam = 0`` puts
  every job at 0 s).
* The SLO factor (1.2, 2 or 10 with ``uniform(0,1)`` thresholds 0.33 / 0.67) times the
  duration is the deadline after arrival.

The job-table order matters (see ``gavel_job_table``): ``order='2020'`` reproduces the trace behind
the published numbers (A3C at index 14), ``order='head'`` the one of Gavel's HEAD.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from computepool.model.job import JobKind
from computepool.model.throughput import Throughputs
from computepool.model.workload import JobClass, Workload
from computepool.traces.errors import TraceError
from computepool.traces.gavel_job_table import GavelTemplate, job_table
from computepool.traces.spec import check_known, opt_bool, opt_float, opt_int, split_spec

JOB_SEED_OFFSET = 2
ARRIVAL_SEED_OFFSET = 3
SLO_SEED_OFFSET = 6


@dataclass(frozen=True)
class GavelSpec:
    """Parameters of Gavel's generator (``simulate_scheduler_with_generated_jobs.py``)."""

    #: Input job rate in jobs per hour (Gavel's sweeps); ``lam`` wins when both are given.
    rate: float | None = None
    #: Mean inter-arrival time in seconds (Gavel's ``-l/--lam``); 0 = all jobs at time 0.
    lam: float | None = None
    jobs: int = 6000
    multi_gpu: bool = False
    seed: int = 0
    priority: bool = False
    slo: bool = False
    #: ``2020`` (published numbers) or ``head`` job-table order.
    order: str = "2020"
    #: Gavel's ``--fixed-job-duration`` (seconds); None = draw from the 80/20 mix.
    fixed_duration: float | None = None
    #: Worker type whose isolated throughput turns a duration into steps (Gavel: v100).
    reference: str = "V100"

    def mean_interarrival(self) -> float:
        if self.lam is not None:
            if self.lam < 0:
                raise ValueError(f"lam must be >= 0, got {self.lam}")
            return self.lam
        if self.rate is None or self.rate <= 0:
            raise ValueError("give a positive rate (jobs/hour) or lam (seconds)")
        return 3600.0 / self.rate


@dataclass
class GavelTrace:
    """A generated trace: the ``Workload`` plus what Gavel keeps per job beside it."""

    workload: Workload
    #: Isolated run time on the reference accelerator, seconds (Gavel's ``job.duration``).
    duration: np.ndarray
    priority_weight: np.ndarray
    #: SLO factor (deadline = factor x duration after arrival); NaN when SLOs are off.
    slo: np.ndarray
    spec: GavelSpec = field(default_factory=GavelSpec)


def draw_scale_factor(rng: random.Random) -> int:
    r = rng.uniform(0, 1)
    if 0.7 <= r <= 0.8:
        return 2
    if 0.8 <= r <= 0.95:
        return 4
    if r >= 0.95:
        return 8
    return 1


def draw_duration(rng: random.Random) -> float:
    if rng.random() >= 0.8:
        return 60 * (10 ** rng.uniform(3, 4))
    return 60 * (10 ** rng.uniform(1.5, 3))


def draw_template(
    rng: random.Random, table: tuple[GavelTemplate, ...], scale_factor: int
) -> GavelTemplate:
    while True:
        template = rng.choice(table)
        if scale_factor == 1 or template.distributed:
            return template


def draw_priority(rng: random.Random) -> float:
    r = rng.uniform(0, 1)
    return 5.0 if 0.0 <= r <= 0.2 else 1.0


def draw_slo(rng: random.Random) -> float:
    r = rng.uniform(0, 1)
    if r < 0.33:
        return 1.2
    if r < 0.67:
        return 2.0
    return 10.0


def arrival_times(n: int, lam: float, seed: int) -> np.ndarray:
    """Gavel's Poisson arrivals: 0 for job 0, then exponential gaps with mean ``lam`` s."""
    rng = random.Random(seed + ARRIVAL_SEED_OFFSET)
    out = np.zeros(n)
    last = 0.0
    for i in range(1, n):
        delta = 0.0 if lam == 0.0 else -math.log(1.0 - rng.random()) / (1.0 / lam)
        last = delta + last
        out[i] = last
    return out


def _isolated_rate(throughputs: Throughputs, job_type: str, sf: int, ref: str) -> float:
    row = throughputs.measured.get((job_type, sf), {})
    if ref not in row or row[ref] <= 0:
        raise TraceError(
            f"gavel generator ({throughputs.source or 'throughputs'})",
            f"no measured isolated {ref} throughput for ({job_type!r}, {sf})",
            field="job_type",
        )
    return float(row[ref])


def generate_gavel(spec: GavelSpec, throughputs: Throughputs | None = None) -> GavelTrace:
    """Generate ``spec.jobs`` jobs exactly as Gavel's simulator does for the same seed."""
    if throughputs is None:
        from computepool.catalog.throughputs import load_throughputs

        throughputs = load_throughputs("gavel", with_pairs=False)
    if spec.jobs < 0:
        raise ValueError(f"jobs must be >= 0, got {spec.jobs}")
    table = job_table(spec.order)
    lam = spec.mean_interarrival()
    rng = random.Random(spec.seed + JOB_SEED_OFFSET)
    slo_rng = random.Random(spec.seed + SLO_SEED_OFFSET) if spec.slo else None
    n = spec.jobs
    class_ix: dict[tuple[str, int], int] = {}
    rates: dict[tuple[str, int], float] = {}
    job_class = np.zeros(n, dtype=np.int32)
    duration, steps = np.zeros(n), np.zeros(n)
    priority, slo = np.ones(n), np.full(n, np.nan)
    for i in range(n):
        sf = draw_scale_factor(rng)
        run_time = spec.fixed_duration if spec.fixed_duration else draw_duration(rng)
        if not spec.multi_gpu:
            sf = 1
        template = draw_template(rng, table, sf)
        key = (template.model, sf)
        if key not in rates:
            rates[key] = _isolated_rate(throughputs, template.model, sf, spec.reference)
            class_ix[key] = len(class_ix)
        job_class[i] = class_ix[key]
        duration[i] = run_time
        steps[i] = run_time * rates[key]
        if spec.priority:
            priority[i] = draw_priority(rng)
        if slo_rng is not None:
            slo[i] = draw_slo(slo_rng)
    workload = Workload(
        arrival=arrival_times(n, lam, spec.seed),
        job_class=job_class,
        total_steps=steps,
        classes=[JobClass(jt, sf, JobKind.TRAIN) for jt, sf in class_ix],
        weight=priority,
        deadline=slo * duration,
        ids=[str(i) for i in range(n)],
        name=format_gavel_spec(spec),
    )
    return GavelTrace(workload, duration, priority, slo, spec)


_KNOWN = {
    "rate",
    "lam",
    "jobs",
    "multi_gpu",
    "seed",
    "priority",
    "slo",
    "order",
    "fixed_duration",
    "reference",
}


def parse_gavel_spec(text: str) -> GavelSpec:
    """``gavel:rate=5.6,jobs=6000,multi_gpu=false,seed=0`` -> ``GavelSpec``."""
    opts = split_spec(text, "gavel")
    check_known(text, opts, _KNOWN)
    spec = GavelSpec(
        rate=opt_float(text, opts, "rate", None),
        lam=opt_float(text, opts, "lam", None),
        jobs=opt_int(text, opts, "jobs", 6000),
        multi_gpu=opt_bool(text, opts, "multi_gpu", False),
        seed=opt_int(text, opts, "seed", 0),
        priority=opt_bool(text, opts, "priority", False),
        slo=opt_bool(text, opts, "slo", False),
        order=opts.get("order", "2020"),
        fixed_duration=opt_float(text, opts, "fixed_duration", None),
        reference=opts.get("reference", "V100"),
    )
    if spec.order not in ("2020", "head"):
        raise TraceError(text, f"{spec.order!r} is not '2020' or 'head'", field="order")
    if spec.jobs < 0:
        raise TraceError(text, "must be >= 0", field="jobs")
    try:
        spec.mean_interarrival()
    except ValueError as exc:
        raise TraceError(text, str(exc), field="lam" if spec.lam is not None else "rate") from None
    return spec


def format_gavel_spec(spec: GavelSpec) -> str:
    rate = f"lam={spec.lam!r}" if spec.lam is not None else f"rate={spec.rate!r}"
    parts = [
        rate,
        f"jobs={spec.jobs}",
        f"multi_gpu={str(spec.multi_gpu).lower()}",
        f"seed={spec.seed}",
    ]
    if spec.priority:
        parts.append("priority=true")
    if spec.slo:
        parts.append("slo=true")
    if spec.order != "2020":
        parts.append(f"order={spec.order}")
    if spec.fixed_duration:
        parts.append(f"fixed_duration={spec.fixed_duration!r}")
    if spec.reference != "V100":
        parts.append(f"reference={spec.reference}")
    return "gavel:" + ",".join(parts)


def generate_gavel_workload(
    text_or_spec: str | GavelSpec, throughputs: Throughputs | None = None
) -> Workload:
    spec = parse_gavel_spec(text_or_spec) if isinstance(text_or_spec, str) else text_or_spec
    return generate_gavel(spec, throughputs).workload
