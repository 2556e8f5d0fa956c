"""computepool's own workload files: YAML (``jobs:`` list, optional ``defaults:``) and JSONL.

Every job has the fields of ``computepool.model.Job``; work is given either as ``total_steps``
(units of the throughput table) or as ``duration_hours`` on a ``reference_accelerator`` (default
V100), and arrival as ``arrival`` (seconds) or ``arrival_hours``. The format is documented in
``docs/workloads.md``. Errors name the file, the line (the field's line in YAML, the record's in
JSONL), the job index and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from computepool.catalog import yaml_lines
from computepool.model.dataset_spec import DatasetSpec
from computepool.model.field_names import DEPRECATED, warn_old_names
from computepool.model.job import Job, JobKind
from computepool.model.tenant import Tenant
from computepool.model.throughput import GENERIC, Throughputs
from computepool.model.workload import Workload
from computepool.traces.columns import resolve_throughputs
from computepool.traces.csvutil import read_text
from computepool.traces.errors import TraceError
from computepool.traces.tenants import read_tenants_section

#: Top-level sections read by ``computepool.serving.config`` (services beside the jobs).
SERVING_KEYS = ("services", "traffic", "serving")


#: The live API's names for workload-file fields: a job file that ``cpool submit`` sends can
#: be a workload file's job as it is (one contract; either spelling, not both). The old
#: spellings (the model's) are deprecated: a file that uses them gets one warning.
API_NAMES = {new: old for old, new in DEPRECATED.items()}


class JobSpec(BaseModel):
    """One job as written in a workload file."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _api_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in API_NAMES):
            return data
        data = dict(data)
        for api, ours in API_NAMES.items():
            if api in data:
                if ours in data:
                    raise ValueError(f"give {api} or {ours}, not both (they are one field)")
                data[ours] = data.pop(api)
        return data

    id: str | None = None
    tenant: str = "default"
    kind: JobKind = JobKind.TRAIN
    job_type: str = GENERIC
    workers: int = Field(1, ge=1)
    accel_per_worker: float = Field(1.0, gt=0)
    gang: bool = True
    stacks: list[str] = Field(default_factory=list)
    accelerators: list[str] = Field(default_factory=list)
    total_steps: float | None = Field(None, ge=0)
    duration_hours: float | None = Field(None, ge=0)
    reference_accelerator: str = "V100"
    arrival: float | None = Field(None, ge=0)
    arrival_hours: float | None = Field(None, ge=0)
    priority: int = 0
    weight: float = Field(1.0, gt=0)
    deadline: float | None = Field(None, gt=0)
    deadline_hours: float | None = Field(None, gt=0)
    preemptible: bool = True
    datasets: list[DatasetSpec] = Field(default_factory=list)
    command: str | None = None
    cpu_milli_per_worker: int = Field(0, ge=0)
    memory_mib_per_worker: int = Field(0, ge=0)
    env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_of_each(self) -> JobSpec:
        if (self.total_steps is None) == (self.duration_hours is None):
            raise ValueError("give exactly one of total_steps and duration_hours")
        if self.arrival is not None and self.arrival_hours is not None:
            raise ValueError("give at most one of arrival and arrival_hours")
        if self.deadline is not None and self.deadline_hours is not None:
            raise ValueError("give at most one of deadline and deadline_hours")
        return self

    @property
    def scale_factor(self) -> int:
        return max(1, round(self.workers * self.accel_per_worker))


def _to_job(spec: JobSpec, index: int, t: Throughputs) -> tuple[Job | None, str, str]:
    """The Job, or (None, field, reason) when the spec is valid pydantic-wise but not usable."""
    known = set(t.job_types) | {GENERIC}
    if spec.job_type not in known:
        return (
            None,
            "job_type",
            f"unknown job type {spec.job_type!r} (known: generic and the throughput table's)",
        )
    steps = spec.total_steps
    if steps is None:
        rate = t.rate(spec.job_type, spec.scale_factor, spec.reference_accelerator)
        if rate <= 0:
            why = f"no rate for {spec.job_type!r} x{spec.scale_factor} on {spec.reference_accelerator!r}"
            return None, "reference_accelerator", why
        steps = float(spec.duration_hours or 0.0) * 3600.0 * rate
    arrival = spec.arrival if spec.arrival is not None else (spec.arrival_hours or 0.0) * 3600.0
    deadline = spec.deadline if spec.deadline_hours is None else spec.deadline_hours * 3600.0
    job = Job(
        id=spec.id if spec.id is not None else str(index),
        tenant=spec.tenant,
        kind=spec.kind,
        job_type=spec.job_type,
        workers=spec.workers,
        accel_per_worker=spec.accel_per_worker,
        gang=spec.gang,
        stacks=tuple(spec.stacks),
        accelerators=tuple(spec.accelerators),
        total_steps=steps,
        arrival=arrival,
        priority=spec.priority,
        weight=spec.weight,
        deadline=deadline,
        preemptible=spec.preemptible,
        datasets=tuple(d.dataset() for d in spec.datasets),
        command=spec.command,
        cpu_milli_per_worker=spec.cpu_milli_per_worker,
        memory_mib_per_worker=spec.memory_mib_per_worker,
        env=tuple(sorted(spec.env.items())),
    )
    return job, "", ""


def _build_job(
    record: object, index: int, t: Throughputs, file: str, line_of: dict[str, int], job_line: int
) -> Job:
    if not isinstance(record, dict):
        raise TraceError(
            file, f"job {index}: is a {type(record).__name__}, not a mapping", job_line, "job"
        )
    try:
        spec = JobSpec.model_validate(record)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err["loc"]]
        field = ".".join(loc) if loc else "job"
        line = line_of.get(loc[0], job_line) if loc else job_line
        extra = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise TraceError(file, f"job {index}: {err['msg']}{extra}", line, field) from None
    job, field, reason = _to_job(spec, index, t)
    if job is None:
        raise TraceError(file, f"job {index}: {reason}", line_of.get(field, job_line), field)
    return job


def job_from_record(record: object, index: int, throughputs: Throughputs, file: str) -> Job:
    """One job record (a workload file's job fields) as a ``Job``; TraceError names the file,
    the job index and the field."""
    return _build_job(record, index, throughputs, file, {}, 1)


def _check_ids(jobs: list[Job], file: str, lines: list[int]) -> None:
    seen: dict[str, int] = {}
    for i, j in enumerate(jobs):
        if j.id in seen:
            raise TraceError(file, f"job {i}: id {j.id!r} repeats job {seen[j.id]}", lines[i], "id")
        seen[j.id] = i


def _yaml_lines(root: yaml.Node | None) -> tuple[int, list[tuple[int, dict[str, int]]]]:
    """(line of ``defaults:``, [(job line, {field: line})]) from the composed YAML tree."""
    out: list[tuple[int, dict[str, int]]] = []
    defaults_line = 1
    if not isinstance(root, yaml.MappingNode):
        return defaults_line, out
    for key, value in root.value:
        if key.value == "defaults":
            defaults_line = key.start_mark.line + 1
        if key.value == "jobs" and isinstance(value, yaml.SequenceNode):
            for item in value.value:
                fields: dict[str, int] = {}
                if isinstance(item, yaml.MappingNode):
                    fields = {k.value: k.start_mark.line + 1 for k, _ in item.value}
                out.append((item.start_mark.line + 1, fields))
    return defaults_line, out


def read_yaml_jobs(path: str | Path, throughputs: Throughputs | None = None) -> list[Job]:
    """The jobs of a YAML workload file, ``defaults:`` applied, in file order."""
    file, text = str(path), read_text(path)
    try:
        parsed = yaml_lines.load(text, file)
    except yaml_lines.YamlSyntaxError as exc:
        raise TraceError(file, f"not valid YAML: {exc.reason}", exc.line, "yaml") from None
    data, root = parsed.data, parsed.root
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise TraceError(file, "top level must be a mapping with a 'jobs:' list", 1, "jobs")
    unknown = set(data) - {"jobs", "defaults", "name", "tenants", *SERVING_KEYS}
    if unknown:
        raise TraceError(
            file,
            f"unknown top-level key(s) {sorted(unknown)} "
            f"(allowed: name, defaults, jobs, tenants, {', '.join(SERVING_KEYS)})",
            1,
            sorted(unknown)[0],
        )
    read_tenants_section(data.get("tenants"), file, root)  # errors name their line
    defaults = data.get("defaults") or {}
    defaults_line, lines = _yaml_lines(root)
    if not isinstance(defaults, dict):
        raise TraceError(file, "must be a mapping of job fields", defaults_line, "defaults")
    t = resolve_throughputs(throughputs)
    warn_old_names(file, [defaults, *data["jobs"]])
    jobs: list[Job] = []
    for i, record in enumerate(data["jobs"]):
        job_line, fields = lines[i] if i < len(lines) else (1, {})
        merged = {**defaults, **record} if isinstance(record, dict) else record
        field_lines = {
            k: fields.get(k, defaults_line) for k in (merged if isinstance(merged, dict) else {})
        }
        jobs.append(_build_job(merged, i, t, file, field_lines, job_line))
    _check_ids(jobs, file, [ln for ln, _ in lines])
    return jobs


def read_yaml_tenants(path: str | Path) -> dict[str, Tenant]:
    """The ``tenants:`` section of a YAML workload file (quotas, cohorts, budgets), by name;
    empty when the file has none."""
    file, text = str(path), read_text(path)
    try:
        parsed = yaml_lines.load(text, file)
    except yaml_lines.YamlSyntaxError as exc:
        raise TraceError(file, f"not valid YAML: {exc.reason}", exc.line, "yaml") from None
    if not isinstance(parsed.data, dict):
        return {}
    return read_tenants_section(parsed.data.get("tenants"), file, parsed.root)


def read_jsonl_jobs(path: str | Path, throughputs: Throughputs | None = None) -> list[Job]:
    """The jobs of a JSONL file: one JSON object per non-blank line."""
    file, text = str(path), read_text(path)
    t = resolve_throughputs(throughputs)
    jobs: list[Job] = []
    lines: list[int] = []
    records: list[object] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TraceError(
                file, f"not valid JSON at column {exc.colno}: {exc.msg}", n, "json"
            ) from None
        jobs.append(_build_job(record, len(jobs), t, file, {}, n))
        lines.append(n)
        records.append(record)
    warn_old_names(file, records)
    _check_ids(jobs, file, lines)
    return jobs


def read_yaml_workload(path: str | Path, throughputs: Throughputs | None = None) -> Workload:
    return Workload.from_jobs(read_yaml_jobs(path, throughputs), name=str(path))


def read_jsonl_workload(path: str | Path, throughputs: Throughputs | None = None) -> Workload:
    return Workload.from_jobs(read_jsonl_jobs(path, throughputs), name=str(path))


def job_to_record(job: Job) -> dict[str, Any]:
    """A ``Job`` as a JSONL/YAML record (``work`` form, the contract's names), for writing
    workloads."""
    rec: dict[str, Any] = {
        "id": job.id, "tenant": job.tenant, "kind": job.kind.value, "job_type": job.job_type,
        "workers": job.workers, "accelerators_per_worker": job.accel_per_worker,
        "gang": job.gang, "stacks": list(job.stacks), "accelerator_types": list(job.accelerators),
        "work": job.total_steps, "arrival": job.arrival, "priority": job.priority,
        "weight": job.weight, "deadline": job.deadline, "preemptible": job.preemptible,
        "datasets": [
            {"name": d.name, "data_class": d.data_class, "origin": d.origin, "stored_in": d.stored_in,
             "size_gb": d.size_gb, "persons": d.persons, "anonymised": d.anonymised,
             "handler": d.handler}
            for d in job.datasets
        ],
        "command": job.command,
    }  # fmt: skip
    return rec
