"""A multi-tenant residency scenario from one YAML file: tenants with their datasets and job
mixes, approvals, a simulated week on a pool, and a stream of latency-bound requests.

``load_scenario`` validates the file (errors name file, field, reason); ``run_scenario``
generates the jobs (seeded), simulates them with the ``ResidencyCheck`` on, replays the offload
stream and returns per-tenant figures: regions used, data moved, JCT, cost, carbon and the
deadline-hit rate. See examples/residency/three-automakers.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from computepool.admission.approvals import parse_approvals
from computepool.admission.residency import ResidencyCheck
from computepool.admission.residency_config import ResidencyOptions, make_residency_check
from computepool.admission.rulebook import RulebookError, field_path
from computepool.catalog import yaml_lines
from computepool.catalog.pools import load_pool
from computepool.catalog.throughputs import load_throughputs
from computepool.model.dataset_spec import DatasetSpec
from computepool.model.job import Dataset, Job, JobKind
from computepool.model.pool import Pool
from computepool.model.workload import Workload
from computepool.policies.registry import get_policy
from computepool.routing.latency import load_latency_model
from computepool.routing.stream import (
    RequestClass,
    Stream,
    StreamResult,
    generate_stream,
    replay_stream,
)
from computepool.sim.metrics import SimResult
from computepool.sim.run import SimConfig, simulate


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Duration(_Spec):
    median_hours: float = Field(gt=0)
    sigma: float = Field(1.0, ge=0)


class JobMix(_Spec):
    name: str = Field(min_length=1)
    kind: JobKind = JobKind.TRAIN
    rate_per_hour: float = Field(gt=0)
    #: Accelerators per job: one of these, uniformly.
    sizes: list[int] = Field(min_length=1)
    #: Accelerator types the jobs may use; empty = any.
    accelerator_types: list[str] = []
    duration: Duration
    stacks: list[str] = []
    #: Datasets (by name) each job reads: all of them, or one picked at random.
    datasets: list[str] = []
    reads: Literal["all", "one"] = "all"


class TenantSpec(_Spec):
    name: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    datasets: list[DatasetSpec] = []
    jobs: list[JobMix] = Field(min_length=1)

    @model_validator(mode="after")
    def _datasets_known(self) -> TenantSpec:
        names = {d.name for d in self.datasets}
        for m in self.jobs:
            for d in m.datasets:
                if d not in names:
                    raise ValueError(f"job mix {m.name!r} reads unknown dataset {d!r}")
        return self


class RequestSpec(_Spec):
    name: str = Field(min_length=1)
    tenant: str
    sites: list[str] = Field(min_length=1)
    rate_per_s: float = Field(gt=0)
    deadline_ms: float = Field(gt=0)
    work_h100_ms: float = Field(gt=0)
    work_sigma: float = Field(0.5, ge=0)
    network: str = "5g"
    data: list[DatasetSpec] = []


class OffloadSpec(_Spec):
    minutes: float = Field(gt=0)
    servers: dict[str, int]
    classes: list[RequestSpec] = Field(min_length=1)


class ScenarioSpec(_Spec):
    name: str
    description: str = ""
    pool: str = "automotive-demo"
    policy: str = "cost-region"
    policy_params: dict[str, Any] = {}
    rulebook: str = "default"
    automotive_strict: bool | None = None
    start: date = date(2026, 1, 5)
    days: float = Field(7.0, gt=0)
    seed: int = 0
    round_seconds: float = Field(300.0, gt=0)
    approvals: list[dict[str, Any]] = []
    tenants: list[TenantSpec] = Field(min_length=1)
    offload: OffloadSpec | None = None


def load_scenario(path: str | Path) -> ScenarioSpec:
    p = Path(path)
    if not p.exists():
        raise RulebookError(str(p), [("(file)", "no such file")])
    try:
        doc = yaml_lines.read(p).data
        spec = ScenarioSpec.model_validate(doc)
    except yaml_lines.YamlSyntaxError as exc:
        raise RulebookError(
            str(p), [(f"line {exc.line}", f"not valid YAML: {exc.reason}")]
        ) from None
    except ValidationError as exc:
        raise RulebookError(
            str(p), [(field_path(e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    tenants = {t.name for t in spec.tenants}
    for i, c in enumerate(spec.offload.classes if spec.offload else []):
        if c.tenant not in tenants:
            raise RulebookError(
                str(p), [(f"offload.classes[{i}].tenant", f"unknown tenant {c.tenant!r}")]
            )
    return spec


def _dataset(d: DatasetSpec, handler: str) -> Dataset:
    return Dataset(**{**d.model_dump(), "handler": handler})


def generate_jobs(spec: ScenarioSpec, pool: Pool) -> list[Job]:
    """Poisson arrivals per job mix over ``days``; log-normal durations on an H100."""
    rng = np.random.default_rng(spec.seed)
    horizon = spec.days * 86400.0
    h100 = pool.accelerators["H100"].h100_equiv if "H100" in pool.accelerators else 1.0
    jobs: list[Job] = []
    for t in spec.tenants:
        ds = {d.name: _dataset(d, t.name) for d in t.datasets}
        for m in t.jobs:
            n = int(rng.poisson(m.rate_per_hour * horizon / 3600.0))
            arrivals = np.sort(rng.uniform(0.0, horizon, n))
            sizes = rng.choice(m.sizes, n)
            hours = rng.lognormal(np.log(m.duration.median_hours), m.duration.sigma, n)
            pick = rng.integers(0, max(len(m.datasets), 1), n)
            for k in range(n):
                reads = m.datasets if m.reads == "all" else m.datasets[pick[k] : pick[k] + 1]
                sf = int(sizes[k])
                jobs.append(
                    Job(
                        id=f"{t.name}/{m.name}/{k}",
                        tenant=t.name,
                        kind=m.kind,
                        workers=sf,
                        stacks=tuple(m.stacks),
                        accelerators=tuple(m.accelerator_types),
                        total_steps=float(hours[k] * 3600.0 * sf * h100),
                        arrival=float(arrivals[k]),
                        weight=t.weight,
                        datasets=tuple(ds[r] for r in reads),
                    )
                )
    jobs.sort(key=lambda j: j.arrival)
    return jobs


@dataclass
class ScenarioResult:
    spec: ScenarioSpec
    pool: Pool
    workload: Workload
    sim: SimResult
    check: ResidencyCheck
    stream: StreamResult | None = None
    requests: Stream | None = None
    stream_tenant: np.ndarray | None = None
    tenants: list[dict[str, Any]] = field(default_factory=list)

    def job_region(self) -> np.ndarray:
        """Region of each job's last start ('' if it never started)."""
        out = np.full(len(self.workload), "", dtype=object)
        index = {jid: i for i, jid in enumerate(self.workload.ids or [])}
        for rec in self.check.audit.records(self.workload.ids):
            if rec["outcome"] == "allowed":
                out[index[rec["job"]]] = rec["region"]
        return out

    def figures(self) -> dict[str, Any]:
        return {
            "scenario": self.spec.name,
            "pool": self.spec.pool,
            "policy": self.spec.policy,
            "tenants": self.tenants,
            "summary": self.sim.summary(),
        }

    def write_audit(self, path: str | Path) -> int:
        w = self.workload
        return self.check.audit.write_jsonl(path, w.ids, [w.tenants[i] for i in w.tenant])


def _tenant_rows(res: ScenarioResult) -> list[dict[str, Any]]:
    w, sim = res.workload, res.sim
    region = res.job_region()
    price = {r: reg.electricity_usd_per_kwh for r, reg in res.pool.regions.items()}
    energy_usd = sim.energy_kwh * np.array([price.get(r, 0.0) for r in region])
    gb, egress = np.zeros(len(w)), np.zeros(len(w))
    a = res.check.audit
    for j, g, usd in zip(a.job, a.transfer_gb, a.egress_usd, strict=True):
        gb[j] += g
        egress[j] += usd
    rows = []
    for ti, name in enumerate(w.tenants):
        mine = w.tenant == ti
        done = mine & ~np.isnan(sim.end)
        acc = sim.accel_seconds[mine]
        shares: dict[str, float] = {}
        for r in sorted(set(region[mine]) - {""}):
            sel = region[mine] == r
            shares[r] = float(acc[sel].sum() / acc.sum()) if acc.sum() > 0 else 0.0
        jct = (sim.end - sim.arrival)[done] / 3600.0
        hit = None
        if res.stream is not None and res.stream_tenant is not None:
            sel = res.stream_tenant == name
            hit = res.stream.hit_rate(sel) if sel.any() else None
        rows.append(
            {
                "tenant": name,
                "jobs": int(mine.sum()),
                "completed": int(done.sum()),
                "rejected": int(sum(1 for j in sim.rejected if mine[j])),
                "region_share": shares,
                "accelerator_hours": float(acc.sum() / 3600.0),
                "transfer_tb": float(gb[mine].sum() / 1000.0),
                "avg_jct_hours": float(jct.mean()) if len(jct) else None,
                "p90_jct_hours": float(np.percentile(jct, 90)) if len(jct) else None,
                "cost_usd": float(sim.cost_usd[mine].sum() + energy_usd[mine].sum()),
                "list_price_usd": float(sim.cost_usd[mine].sum() - egress[mine].sum()),
                "energy_usd": float(energy_usd[mine].sum()),
                "egress_usd": float(egress[mine].sum()),
                "carbon_t": float(sim.carbon_kg[mine].sum() / 1000.0),
                "deadline_hit_rate": hit,
                "edge_rate": (
                    res.stream.edge_rate(res.stream_tenant == name)
                    if res.stream is not None and res.stream_tenant is not None and hit is not None
                    else None
                ),
            }
        )
    return rows


def run_scenario(spec: ScenarioSpec) -> ScenarioResult:
    pool = load_pool(spec.pool)
    opts = ResidencyOptions(
        rulebook=spec.rulebook,
        start=spec.start.isoformat(),
        automotive_strict=spec.automotive_strict,
    )
    check = make_residency_check(pool, opts)
    if check is None:
        raise ValueError(f"{spec.name}: rulebook 'off' leaves nothing to show")
    label = f"{spec.name}: approvals"
    check.set_approvals(
        parse_approvals({"approvals": spec.approvals}, check.rulebook, check.timebase, label)
    )
    jobs = generate_jobs(spec, pool)
    if not jobs:
        raise ValueError(
            f"{spec.name}: the job mixes generate no jobs; raise rate_per_hour or days"
        )
    workload = Workload.from_jobs(jobs, name=spec.name)
    tp = load_throughputs("gavel", accelerators=pool.accelerators)
    policy = get_policy(spec.policy, **spec.policy_params)
    cfg = SimConfig(round_seconds=spec.round_seconds)
    sim = simulate(pool, workload, tp, policy, cfg, checks=(check,))
    sim.policy = spec.policy
    res = ScenarioResult(spec, pool, workload, sim, check)
    if spec.offload is not None:
        model = load_latency_model()
        handler = {c.name: c.tenant for c in spec.offload.classes}
        classes = [
            RequestClass(
                c.name,
                c.tenant,
                tuple(c.sites),
                c.rate_per_s,
                c.deadline_ms,
                c.work_h100_ms,
                c.network,
                tuple(_dataset(d, handler[c.name]) for d in c.data),
                c.work_sigma,
            )  # fmt: skip
            for c in spec.offload.classes
        ]
        stream = generate_stream(classes, model, spec.offload.minutes * 60.0, spec.seed)
        res.stream = replay_stream(stream, pool, model, check, spec.offload.servers)
        res.stream_tenant = np.array([classes[k].tenant for k in stream.klass], dtype=object)
        res.requests = stream
    res.tenants = _tenant_rows(res)
    return res
