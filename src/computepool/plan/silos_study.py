"""A pool-vs-silos study file (YAML) and turning it into a ``silos.StudyInput``.

Paths in the file are relative to the file's folder; when that does not exist, relative to the
current directory (so ``../shared/data/...`` works from the repository root).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from computepool.catalog.accelerators import load_accelerators, load_fx
from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.files import read_yaml_mapping
from computepool.catalog.regions import load_regions
from computepool.catalog.schema import to_usd
from computepool.catalog.throughputs import load_throughputs
from computepool.model.workload import Workload
from computepool.plan.silos import Economics, StudyInput, durations, subset

DAY = 86400.0


class StudyFileError(CatalogFileError):
    kind = "pool-vs-silos study"


class WindowIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: First day (since the workload's first arrival) whose jobs are measured.
    start_day: Annotated[float, Field(ge=0)] = 0.0
    days: Annotated[float, Field(gt=0)] | None = None
    #: Days of jobs before the window that are simulated to warm the clusters up.
    warmup_days: Annotated[float, Field(ge=0)] = 2.0


class StudyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "pool-vs-silos"
    workload: str | None = None
    format: str | None = None
    window: WindowIn = WindowIn()
    #: Keep the N tenants with the most work in the window (the rest are dropped); null: all.
    tenants: Annotated[int, Field(ge=1)] | None = None
    #: Keep this fraction of the jobs (seeded random sample); null: all.
    sample: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: int = 0
    accelerator: str = "H100"
    per_node: Annotated[int, Field(ge=1)] = 8
    region: str = "cn-ulanqab"
    #: All-in capex per card (server, network, facility share); default catalog purchase price.
    capex_per_card_usd: Annotated[float, Field(gt=0)] | None = None
    lifetime_years: Annotated[float, Field(gt=0)] = 4.0
    it_overhead: Annotated[float, Field(ge=1)] = 1.0
    idle_power_fraction: Annotated[float, Field(ge=0, le=1)] = 0.3
    policy: str = "fifo"
    round_seconds: Annotated[float, Field(gt=0)] = 360.0
    #: The smaller pool may have an average JCT this much above the silos' (a fraction). The
    #: default 1% absorbs the scheduler's round granularity (a job starts at a round boundary).
    jct_tolerance: Annotated[float, Field(ge=0)] = 0.01
    jct_target_hours: Annotated[float, Field(gt=0)] | None = None
    #: Silo sizing rule: each tenant's silo holds this time-weighted quantile of its demand
    #: (0.95: its 95th-percentile concurrent cards; 1.0: its true peak)...
    peak_quantile: Annotated[float, Field(gt=0, le=1)] = 0.95
    #: ...or, per tenant, the cards it actually bought (overrides the quantile for that tenant).
    silo_cards: dict[Annotated[str, Field(max_length=128)], Annotated[int, Field(ge=1)]] = {}
    #: Who is a tenant: ``trace`` (the trace's own tenant column, e.g. Philly's virtual clusters);
    #: for openb, which has none: ``qos`` (one tenant per QoS class: LS, BE, Burstable,
    #: Guaranteed) or ``qos_shape`` (per QoS class and request shape: shared < 1 GPU, 1 GPU,
    #: multi-GPU).
    tenant_rule: Literal["trace", "qos", "qos_shape"] = "trace"
    max_search_steps: Annotated[int, Field(ge=1, le=40)] = 12

    @field_validator("capex_per_card_usd", mode="before")
    @classmethod
    def _usd(cls, v: Any, info: ValidationInfo) -> Any:
        return to_usd(v, info)


def load_study(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> tuple[StudyIn, Path]:
    """The study file (or defaults) with CLI overrides applied; returns it and its base folder."""
    doc: dict[str, Any] = {}
    base = Path.cwd()
    label = "<command line>"
    if path is not None:
        p = Path(path)
        doc = read_yaml_mapping(p, StudyFileError)
        base, label = p.parent, str(p)
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k in ("start_day", "days"):
            doc.setdefault("window", {})[k] = v
        else:
            doc[k] = v
    try:
        study = StudyIn.model_validate(doc, context={"fx": load_fx()})
    except ValidationError as exc:
        raise StudyFileError(label, problems_from_validation(exc)) from exc
    if study.workload is None:
        raise StudyFileError(label, [Problem("workload", "required (in the file or --workload)")])
    return study, base


def resolve_path(text: str, base: Path) -> Path:
    for p in (base / text, Path(text)):
        if p.exists():
            return p
    raise FileNotFoundError(
        f"workload {text!r} not found (looked in {base} and the current directory). The "
        "shipped studies' traces live in the shared data folder next to the repository "
        "(../shared/data/philly/, ../shared/data/alibaba-openb-v2023/); see docs/planner.md"
    )


def pod_tenant(qos: str, num_gpu: int, gpu_milli: int, rule: str) -> str:
    """The tenant an openb pod is assigned to by ``rule`` (``qos`` or ``qos_shape``)."""
    q = (qos or "none").strip()[:32] or "none"
    if rule == "qos":
        return q
    shape = "multi" if num_gpu > 1 else ("shared" if gpu_milli < 1000 else "whole")
    return f"{q}-{shape}"


def openb_with_tenants(path: Path, tp, accelerator: str, rule: str) -> Workload:
    """openb pods as jobs (durations kept on ``accelerator``), tenants assigned by ``rule``."""
    from computepool.traces.openb import pods_to_workload, read_openb_pods

    pods = read_openb_pods(path)
    w = pods_to_workload(pods, tp, reference=accelerator)
    by_name = {
        str(n): pod_tenant(str(q), int(g), int(m), rule)
        for n, q, g, m in zip(pods.name, pods.qos, pods.num_gpu, pods.gpu_milli, strict=True)
    }
    labels = [by_name[i] for i in (w.ids or [])]
    names = sorted(set(labels))
    index = {n: k for k, n in enumerate(names)}
    w.tenants = names
    w.tenant = np.asarray([index[x] for x in labels], dtype=np.int32)
    return w


def _read(study: StudyIn, base: Path, tp) -> Workload:
    from computepool.traces.detect import detect_format, load_workload
    from computepool.traces.philly import read_philly

    path = resolve_path(study.workload or "", base)
    fmt = study.format or detect_format(path)
    if study.tenant_rule != "trace":
        if fmt != "openb":
            raise StudyFileError(
                study.name,
                [Problem("tenant_rule", f"{study.tenant_rule!r} needs an openb pod list")],
            )
        return openb_with_tenants(path, tp, study.accelerator, study.tenant_rule)
    if fmt == "philly":
        # durations as in the trace, on the study's accelerator
        return read_philly(path, tp, reference=study.accelerator)
    return load_workload(str(path), fmt=fmt, throughputs=tp)


def build_input(study: StudyIn, base: Path) -> tuple[StudyInput, dict[str, Any]]:
    """The simulator inputs, and facts about the selection for the report."""
    accels = load_accelerators()
    regions = load_regions()
    label = study.name
    if study.accelerator not in accels:
        raise StudyFileError(
            label, [Problem("accelerator", f"unknown accelerator {study.accelerator!r}")]
        )
    if study.region not in regions:
        raise StudyFileError(label, [Problem("region", f"unknown region {study.region!r}")])
    a, r = accels[study.accelerator], regions[study.region]
    capex = study.capex_per_card_usd or a.purchase_usd
    if capex is None:
        raise StudyFileError(
            label,
            [
                Problem(
                    "capex_per_card_usd",
                    f"the catalog has no purchase price for {a.name}; give one",
                )
            ],
        )
    tp = load_throughputs("gavel", accelerators=accels)
    w = _read(study, base, tp)
    if len(w) == 0:
        raise StudyFileError(label, [Problem("workload", "has no jobs")])
    first = float(w.arrival[0])
    t0 = first + study.window.start_day * DAY
    t1 = t0 + study.window.days * DAY if study.window.days else float(w.arrival[-1]) + 1.0
    keep = (w.arrival >= t0 - study.window.warmup_days * DAY) & (w.arrival < t1)
    facts: dict[str, Any] = {
        "jobs_in_trace": len(w),
        "tenants_in_trace": len(set(w.tenant.tolist())),
    }
    if study.sample is not None:
        rng = np.random.default_rng(study.seed)
        keep &= rng.random(len(w)) < study.sample
    dur = durations(w, tp, a.name)
    if study.tenants is not None:
        in_win = keep & (w.arrival >= t0)
        work = np.bincount(
            w.tenant[in_win], weights=(w.scale_factor * dur)[in_win], minlength=len(w.tenants)
        )
        top = np.argsort(-work, kind="stable")[: study.tenants]
        keep &= np.isin(w.tenant, top)
    if not keep.any():
        raise StudyFileError(label, [Problem("window", "no jobs arrive in the window")])
    w = subset(w, keep, f"{w.name}")
    facts.update(jobs_simulated=len(w), window_start_s=t0 - first, window_end_s=t1 - first)
    econ = Economics(
        capex_per_card_usd=float(capex),
        lifetime_years=study.lifetime_years,
        # a system-level TDP (tdp_scope: system) already includes the host and network
        busy_kw=a.tdp_w * (1.0 if a.tdp_scope == "system" else study.it_overhead) * r.pue / 1000.0,
        idle_power_fraction=study.idle_power_fraction,
        electricity_usd_per_kwh=r.electricity_usd_per_kwh,
    )
    inp = StudyInput(
        workload=w,
        window=(t0, t1),
        accelerator=a,
        region=r,
        per_node=study.per_node,
        economics=econ,
        throughputs=tp,
        policy=study.policy,
        round_seconds=study.round_seconds,
        jct_tolerance=study.jct_tolerance,
        jct_target_hours=study.jct_target_hours,
        peak_quantile=study.peak_quantile,
        silo_cards=dict(study.silo_cards),
        max_search_steps=study.max_search_steps,
    )
    return inp, facts
