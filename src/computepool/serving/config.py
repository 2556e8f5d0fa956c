"""The ``services:``, ``traffic:`` and ``serving:`` sections of a YAML workload file.

They sit next to ``jobs:`` (docs/serving.md has the reference). Errors are ``TraceError``s
naming the file, the line and the field path (``services[3].slo.ttft_p99_s``) with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from computepool.catalog import yaml_lines
from computepool.serving.activity import ActivatorBounds
from computepool.serving.engines.launch import EngineChoice, choice_problem
from computepool.serving.models import PRECISION_BYTES, ModelSpec, model_fields
from computepool.serving.perf import PerfAssumptions, Profile
from computepool.serving.service import ServiceSpec, ServingConfig, ServingWorkload
from computepool.serving.streams import SHIPPED, LoadStep, TrafficSpec, build_streams
from computepool.traces.csvutil import read_text
from computepool.traces.errors import TraceError

Precision = Literal["bf16", "fp16", "fp8", "int8", "int4"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SloSpec(_Strict):
    ttft_p99_s: float = Field(2.0, gt=0)
    tbt_p99_s: float = Field(0.1, gt=0)


class ModelInline(_Strict):
    name: str = Field("custom", min_length=1)
    params_b: float = Field(gt=0)
    layers: int = Field(ge=1)
    hidden: int = Field(ge=1)
    heads: int = Field(ge=1)
    kv_heads: int = Field(ge=1)
    head_dim: int = Field(0, ge=0)


class ProfileSpec(_Strict):
    accelerator: str
    tp: int = Field(1, ge=1)
    prefill_tokens_per_s: float = Field(gt=0)
    decode_step_s: float = Field(gt=0)
    decode_per_seq_s: float = Field(0.0, ge=0)


class ScaleToZeroEntry(_Strict):
    """``scale_to_zero:`` of a service (live pool): idle window, activator queue and wait."""

    idle_s: float = Field(60.0, gt=0, le=86400)
    queue: int = Field(32, ge=1, le=4096)
    max_wait_s: float = Field(60.0, gt=0, le=600)


class ServiceEntry(_Strict):
    name: str = Field(min_length=1)
    model: str | ModelInline
    precision: Precision = "bf16"
    kv_precision: Precision = "bf16"
    slo: SloSpec = Field(default_factory=SloSpec)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(16, ge=1)
    accelerators: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    tenant: str = "default"
    trace: Literal["conv", "code"] = "conv"
    share: float | None = Field(None, gt=0, le=1)
    profiles: list[ProfileSpec] = Field(default_factory=list)
    # the engine that runs its replicas on the live pool (docs/serving.md "Engines")
    engine: str = Field("emulator", max_length=64)
    model_path: str = Field("", max_length=4096)
    command: list[str] = Field(default_factory=list, max_length=256)
    engine_args: list[str] = Field(default_factory=list, max_length=256)
    ready_path: str = Field("", max_length=256)
    metrics: str = Field("", max_length=64)
    scale_to_zero: ScaleToZeroEntry | None = None

    def engine_choice(self) -> EngineChoice:
        return EngineChoice(self.engine, self.model_path, tuple(self.command),
                            tuple(self.engine_args), self.ready_path, self.metrics)  # fmt: skip

    @model_validator(mode="after")
    def _bounds(self) -> ServiceEntry:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}"
            )
        return self


class StepEntry(_Strict):
    at_s: float = Field(ge=0)
    factor: float = Field(gt=0)
    ramp_s: float = Field(60.0, ge=0)
    services: list[str] = Field(default_factory=list)


class TrafficEntry(_Strict):
    source: str = SHIPPED
    rate_scale: float = Field(1.0, gt=0)
    time_scale: float = Field(1.0, gt=0)
    duration_hours: float = Field(1.0, gt=0)
    popularity: float = Field(1.0, ge=0)
    seed: int = 0
    step: StepEntry | None = None


class ServingEntry(_Strict):
    mode: Literal["pooled", "dedicated"] = "pooled"
    packing: bool = True
    autoscale: bool = True
    flavor_choice: Literal["price", "first"] = "price"
    interval_s: float = Field(30.0, gt=0)
    grace_s: float = Field(30.0, ge=0)
    target_utilization: float = Field(0.6, gt=0, le=1)
    window_s: float = Field(60.0, gt=0)
    burst_window_s: float = Field(10.0, ge=0)
    peak_window_s: float = Field(120.0, gt=0)
    forecast_s: float = Field(60.0, ge=0)
    drain_s: float = Field(30.0, gt=0)
    scale_down_delay_s: float = Field(300.0, ge=0)
    bin_s: float = Field(2.0, gt=0)
    decode_window_s: float = Field(15.0, gt=0)
    multiplex: bool = False
    hot_fraction: float = Field(0.5, ge=0, le=100)
    keep_alive_s: float = Field(60.0, ge=0, le=86400)
    keep_alive_policy: Literal["fixed", "histogram"] = "fixed"
    keep_alive_quantile: float = Field(0.99, gt=0, le=1)
    keep_alive_margin: float = Field(0.1, ge=0, le=10)
    keep_alive_max_s: float = Field(60.0, ge=0, le=86400)
    keep_alive_min_samples: int = Field(20, ge=1, le=100_000)
    keep_alive_window_s: float = Field(14400.0, gt=0, le=7 * 86400)
    keep_alive_epoch_s: float = Field(900.0, ge=10, le=86400)
    residency: Literal["muxserve", "swap"] = "muxserve"
    mux_merge: bool = False
    disaggregate: bool = False
    prefill_keep_alive_s: float = Field(10.0, ge=0, le=86400)
    prefill_fraction: float = Field(0.0, ge=0, le=100)
    prefill_scale_down_delay_s: float = Field(60.0, ge=0, le=86400)
    ttft_queue_share: float = Field(0.0, ge=0, le=1)
    burst_sizing: Literal["window", "replay"] = "window"
    sizing_lookback_s: float = Field(900.0, gt=0, le=86400)
    sizing_delay_share: float = Field(0.75, gt=0, le=1)
    sizing_quantile: float = Field(0.995, gt=0, le=1)
    sizing_tail_samples: int = Field(20, ge=0, le=10_000)
    sizing_history_s: float = Field(0.0, ge=0, le=7 * 86400)
    sizing_history_quantile: float = Field(1.0, ge=0, le=1)
    perf: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _perf_keys(self) -> ServingEntry:
        known = set(PerfAssumptions.__dataclass_fields__) - {"tp_sizes", "fractions"}
        bad = sorted(set(self.perf) - known)
        if bad:
            raise ValueError(f"unknown perf key(s) {bad}; known: {', '.join(sorted(known))}")
        for key, (lo, hi) in PERF_BOUNDS.items():
            v = self.perf.get(key)
            if v is not None and not lo <= v <= hi:
                raise ValueError(f"perf.{key} {v:g} is outside [{lo:g}, {hi:g}]")
        return self


#: Bounds of the multiplexing perf keys (a cold start divides by the bandwidths).
PERF_BOUNDS = {
    "h2d_efficiency": (0.01, 1.0),
    "host_cached": (0.0, 1.0),
    "storage_gbs": (0.01, 1e4),
    "switch_s": (0.0, 3600.0),
    "swap_turn_s": (0.01, 3600.0),  # the swap residency divides by it
}


def _line_of(root: yaml.Node | None, path: list[Any]) -> int | None:
    """Line (1-based) of the deepest node along ``path`` in the composed YAML tree."""
    at = yaml_lines.node_position(root, path)
    return None if at is None else at.line


def _field_path(loc: list[Any]) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out


def _validate(model: type[BaseModel], data: Any, where: list[Any], file: str, root) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [*where, *[x for x in err["loc"] if not str(x).startswith("function-")]]
        # pydantic names the union member tried (str / ModelInline); drop it from the path
        loc = [x for x in loc if x not in ("str", "ModelInline")]
        extra = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise TraceError(
            file, f"{err['msg']}{extra}", _line_of(root, loc), _field_path(loc)
        ) from None


def _model(entry: ServiceEntry, i: int, file: str, root) -> ModelSpec:
    if isinstance(entry.model, str):
        try:
            fields = model_fields(entry.model)
        except KeyError as exc:
            where = ["services", i, "model"]
            raise TraceError(
                file, str(exc.args[0]), _line_of(root, where), _field_path(where)
            ) from None
        name = entry.model
    else:
        fields = entry.model.model_dump()
        name = fields.pop("name")
    return ModelSpec(
        name=name, precision=entry.precision, kv_precision=entry.kv_precision, **fields
    )


def _resolve_source(source: str, file: str) -> str:
    if source == SHIPPED or Path(source).exists():
        return source
    beside = Path(file).parent / source
    return str(beside) if beside.exists() else source


def read_serving(path: str | Path, live: bool = False) -> ServingWorkload | None:
    """The services of a YAML workload file with their request streams; None if it has none.
    ``live``: for the live pool, which refuses what only the simulator models."""
    file, text = str(path), read_text(path)
    try:
        parsed = yaml_lines.load(text, file)
    except yaml_lines.YamlSyntaxError as exc:
        raise TraceError(file, f"not valid YAML: {exc.reason}", exc.line, "yaml") from None
    data, root = parsed.data, parsed.root
    if not isinstance(data, dict) or not data.get("services"):
        return None
    raw = data["services"]
    if not isinstance(raw, list):
        raise TraceError(
            file, "must be a list of services", _line_of(root, ["services"]), "services"
        )
    entries = [_validate(ServiceEntry, r, ["services", i], file, root) for i, r in enumerate(raw)]
    traffic = _validate(TrafficEntry, data.get("traffic") or {}, ["traffic"], file, root)
    serving = _validate(ServingEntry, data.get("serving") or {}, ["serving"], file, root)
    if live and serving.disaggregate:
        where = ["serving", "disaggregate"]
        raise TraceError(
            file, "prefill/decode disaggregation is modelled by the simulator only; the live "
            "pool prefills and decodes on the same replicas (remove it for --services)",
            _line_of(root, where), _field_path(where),
        )  # fmt: skip
    if live and serving.residency == "swap":
        where = ["serving", "residency"]
        raise TraceError(
            file, "residency 'swap' (decode time-slicing with weight swaps) is modelled by the "
            "simulator only; the live pool keeps a decoding model's weights resident (use "
            "'muxserve' or remove it for --services)",
            _line_of(root, where), _field_path(where),
        )  # fmt: skip
    names = [e.name for e in entries]
    for i, e in enumerate(entries):
        bad, why = choice_problem(e.engine_choice())
        if bad:
            where = ["services", i, bad]
            raise TraceError(file, why, _line_of(root, where), _field_path(where))
    for i, n in enumerate(names):
        if n in names[:i]:
            where = ["services", i, "name"]
            raise TraceError(file, f"name {n!r} repeats service {names.index(n)}",
                             _line_of(root, where), _field_path(where))  # fmt: skip
    for kind in ("conv", "code"):
        total = sum(e.share or 0.0 for e in entries if e.trace == kind)
        if total > 1.0 + 1e-9:
            raise TraceError(
                file, f"shares of the {kind!r} services add up to {total:.3f} > 1",
                _line_of(root, ["services"]), "services[].share",
            )  # fmt: skip
    step = None
    if traffic.step is not None:
        unknown = sorted(set(traffic.step.services) - set(names))
        if unknown:
            where = ["traffic", "step", "services"]
            raise TraceError(file, f"unknown service(s) {unknown}", _line_of(root, where),
                             _field_path(where))  # fmt: skip
        s = traffic.step
        step = LoadStep(s.at_s, s.factor, s.ramp_s, tuple(s.services))
    tspec = TrafficSpec(
        source=_resolve_source(traffic.source, file),
        rate_scale=traffic.rate_scale,
        time_scale=traffic.time_scale,
        duration_s=traffic.duration_hours * 3600.0,
        popularity=traffic.popularity,
        seed=traffic.seed,
        step=step,
    )
    specs = tuple(
        ServiceSpec(
            name=e.name,
            model=_model(e, i, file, root),
            ttft_slo_s=e.slo.ttft_p99_s,
            tbt_slo_s=e.slo.tbt_p99_s,
            min_replicas=e.min_replicas,
            max_replicas=e.max_replicas,
            accelerators=tuple(e.accelerators),
            regions=tuple(e.regions),
            tenant=e.tenant,
            trace=e.trace,
            share=e.share,
            profiles=tuple(Profile(**p.model_dump()) for p in e.profiles),
            engine=e.engine_choice(),
            scale_to_zero=(
                None if e.scale_to_zero is None else ActivatorBounds(**e.scale_to_zero.model_dump())
            ),
        )
        for i, e in enumerate(entries)
    )
    try:
        streams = build_streams(
            tspec, names, [e.trace for e in entries], [e.share for e in entries]
        )
    except (ValueError, OSError) as exc:
        where = ["traffic", "source"]
        raise TraceError(file, str(exc), _line_of(root, where), "traffic.source") from None
    cfg_fields = serving.model_dump()
    perf = PerfAssumptions(**cfg_fields.pop("perf"))
    config = ServingConfig(**cfg_fields, perf=perf)
    return ServingWorkload(specs, tuple(streams), tspec, config, source=file)


__all__ = ["PRECISION_BYTES", "read_serving", "with_traffic"]


def with_traffic(sw: ServingWorkload, **changes: Any) -> ServingWorkload:
    """The same services with their request streams redrawn from a changed ``TrafficSpec``
    (e.g. ``rate_scale``, ``popularity``, ``duration_s``, ``step``)."""
    from dataclasses import replace

    traffic = replace(sw.traffic, **changes)
    names = [s.name for s in sw.services]
    streams = build_streams(
        traffic, names, [s.trace for s in sw.services], [s.share for s in sw.services]
    )
    return replace(sw, traffic=traffic, streams=tuple(streams))


#: Bounds of one ``--serving-set`` argument.
MAX_SETTINGS, MAX_SETTING_CHARS = 64, 200


def serving_settings(pairs: list[str], config: ServingConfig) -> ServingConfig:
    """``config`` with the ``serving:`` settings given as ``KEY=VALUE`` (``perf.KEY=VALUE``
    for a perf assumption; values read as YAML scalars), each checked as the file's
    ``serving:`` section is; ValueError naming the argument and the reason."""
    from dataclasses import replace

    if len(pairs) > MAX_SETTINGS:
        raise ValueError(f"at most {MAX_SETTINGS} settings, got {len(pairs)}")
    top: dict[str, Any] = {}
    perf: dict[str, Any] = {}
    for raw in pairs:
        key, sep, text = raw.partition("=")
        key = key.strip()
        if not sep or not key or len(raw) > MAX_SETTING_CHARS:
            raise ValueError(f"{raw[:MAX_SETTING_CHARS]!r}: give KEY=VALUE (a serving: setting)")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ValueError(f"{key}: {text!r} is not a YAML scalar") from None
        if isinstance(value, dict | list):
            raise ValueError(f"{key}: give one value, not {type(value).__name__}")
        if key.startswith("perf."):
            perf[key[5:]] = value
        else:
            top[key] = value
    try:
        entry = ServingEntry.model_validate({**top, "perf": perf})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
        raise ValueError(f"{where or 'serving'}: {err['msg']}") from None
    fields = {k: getattr(entry, k) for k in top}
    cfg = config.variant(**fields) if fields else config
    return replace(cfg, perf=replace(cfg.perf, **perf)) if perf else cfg
