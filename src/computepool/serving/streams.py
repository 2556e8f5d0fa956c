"""Request streams: the Azure LLM inference traces, scaled in rate and time, split over services.

Source: Azure LLM inference trace 2023 (Splitwise, ISCA'24; CC BY 4.0): one hour of a
conversation service (19,366 requests) and one of a coding assistant (8,819), each request with
its prompt and generated token counts. A derived copy (inter-arrival milliseconds + tokens) ships
in ``catalog/data/serving/``; a folder holding the original CSVs can be given instead.

Scaling, in this order:

1. ``rate_scale`` r: ``ceil(r)`` copies of the hour, each circularly shifted by a random offset,
   superposed and thinned to r times the original rate (burst shapes are kept, bursts of the
   copies are independent);
2. ``time_scale`` s: time compressed s-fold (rate x s, bursts s times shorter);
3. tiled (each tile with fresh offsets) to cover ``duration_s``;
4. an optional load *step*: from ``at_s`` the rate rises linearly over ``ramp_s`` to
   ``factor`` times (by superposing more copies);
5. each request goes to one service of its trace, drawn with the services' shares (explicit,
   or Zipf with exponent ``popularity`` over the services in file order).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

TRACES = ("conv", "code")
SHIPPED = "azure-llm-2023"


@dataclass(frozen=True)
class BaseTrace:
    """One trace as arrays: arrival seconds from the first request, prompt and output tokens."""

    t: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    span: float


@dataclass(frozen=True)
class LoadStep:
    at_s: float
    factor: float
    ramp_s: float = 60.0
    #: Services the step applies to (empty: all).
    services: tuple[str, ...] = ()

    def multiplier(self, t: np.ndarray) -> np.ndarray:
        ramp = np.clip((t - self.at_s) / max(self.ramp_s, 1e-9), 0.0, 1.0)
        return 1.0 + (self.factor - 1.0) * ramp


@dataclass(frozen=True)
class TrafficSpec:
    source: str = SHIPPED
    rate_scale: float = 1.0
    time_scale: float = 1.0
    duration_s: float = 3600.0
    popularity: float = 1.0
    seed: int = 0
    step: LoadStep | None = None


@dataclass(frozen=True)
class RequestStream:
    """Requests of one service, in arrival order."""

    t: np.ndarray
    prompt: np.ndarray
    output: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


def _parse_shipped(text: str) -> BaseTrace:
    rows = [r for r in text.splitlines() if r and not r.startswith("#")][1:]
    arr = np.loadtxt(io.StringIO("\n".join(rows)), delimiter=",", dtype=np.int64, ndmin=2)
    t = np.cumsum(arr[:, 0]) / 1000.0
    return BaseTrace(t, arr[:, 1].astype(float), arr[:, 2].astype(float), float(t[-1]))


def _parse_azure_csv(path: Path) -> BaseTrace:
    with path.open(encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if [h.strip() for h in header] != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
            raise ValueError(f"{path}:1: field 'header': expected TIMESTAMP,ContextTokens,...")
        ts, p, o = [], [], []
        for n, row in enumerate(reader, start=2):
            try:
                ts.append(datetime.fromisoformat(row[0].strip()[:26]).timestamp())
                p.append(float(row[1]))
                o.append(float(row[2]))
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{n}: field 'row': cannot read {row!r}") from None
    t = np.asarray(ts)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    return BaseTrace(t, np.asarray(p)[order], np.asarray(o)[order], float(t[-1]))


@cache
def _shipped(kind: str) -> BaseTrace:
    data = resources.files("computepool.catalog").joinpath(
        f"data/serving/azure_llm_2023_{kind}.csv.gz"
    )
    return _parse_shipped(gzip.decompress(data.read_bytes()).decode("utf-8"))


def load_base(source: str, kind: str) -> BaseTrace:
    """The ``kind`` (conv/code) trace from the shipped copy or a folder of original CSVs."""
    if kind not in TRACES:
        raise ValueError(f"unknown trace {kind!r}; give one of {', '.join(TRACES)}")
    if source == SHIPPED:
        return _shipped(kind)
    path = Path(source) / f"AzureLLMInferenceTrace_{kind}.csv"
    if not path.exists():
        raise ValueError(f"{path}: no such file (traffic.source must be {SHIPPED!r} or a folder)")
    return _parse_azure_csv(path)


def scaled_arrivals(
    base: BaseTrace,
    traffic: TrafficSpec,
    rng: np.random.Generator,
    peak_mult: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(times, base row index) of the scaled stream over [0, duration), before the step's
    thinning: offered at ``rate_scale * peak_mult`` times the trace's rate."""
    period = base.span / traffic.time_scale
    tiles = max(1, math.ceil(traffic.duration_s / period))
    target = traffic.rate_scale * peak_mult
    copies = max(1, math.ceil(target))
    keep_p = target / copies
    n = len(base.t)
    times, rows = [], []
    for _tile in range(tiles):
        for _c in range(copies):
            shift = rng.uniform(0.0, base.span)
            t = np.mod(base.t + shift, base.span)
            keep = rng.random(n) < keep_p
            times.append(t[keep] / traffic.time_scale + _tile * period)
            rows.append(np.nonzero(keep)[0])
    t_all = np.concatenate(times)
    r_all = np.concatenate(rows)
    inside = t_all < traffic.duration_s
    t_all, r_all = t_all[inside], r_all[inside]
    order = np.argsort(t_all, kind="stable")
    return t_all[order], r_all[order]


def zipf_shares(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return w / w.sum()


def service_shares(
    traces: Sequence[str], shares: Sequence[float | None], exponent: float
) -> np.ndarray:
    """Share of its trace's requests each service gets: explicit, or Zipf among the services
    of that trace without an explicit share (over what the explicit ones leave)."""
    out = np.zeros(len(traces))
    for kind in set(traces):
        idx = [i for i, k in enumerate(traces) if k == kind]
        fixed = [i for i in idx if shares[i] is not None]
        free = [i for i in idx if shares[i] is None]
        for i in fixed:
            out[i] = float(shares[i])  # type: ignore[arg-type]
        left = max(0.0, 1.0 - sum(out[i] for i in fixed))
        if free:
            out[free] = left * zipf_shares(len(free), exponent)
    return out


def build_streams(
    traffic: TrafficSpec,
    names: Sequence[str],
    traces: Sequence[str],
    shares: Sequence[float | None],
) -> list[RequestStream]:
    """One ``RequestStream`` per service."""
    rng = np.random.default_rng(traffic.seed)
    share = service_shares(traces, shares, traffic.popularity)
    step = traffic.step
    peak = step.factor if step is not None else 1.0
    per: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in names]
    for kind in TRACES:
        idx = [i for i, k in enumerate(traces) if k == kind]
        if not idx:
            continue
        base = load_base(traffic.source, kind)
        t, rows = scaled_arrivals(base, traffic, rng, peak_mult=max(peak, 1.0))
        if step is not None:
            keep = rng.random(len(t)) * peak < step.multiplier(t)
            t, rows = t[keep], rows[keep]
        p = share[idx]
        rest = max(0.0, 1.0 - p.sum())
        choice = rng.choice(len(idx) + 1, size=len(t), p=np.append(p, rest) / (p.sum() + rest))
        for j, i in enumerate(idx):
            m = choice == j
            ti, ri = t[m], rows[m]
            if step is not None and step.services and names[i] not in step.services:
                keep = rng.random(len(ti)) * step.multiplier(ti) < 1.0
                ti, ri = ti[keep], ri[keep]
            per[i].append((ti, base.prompt[ri], base.output[ri]))
    out = []
    for parts in per:
        if not parts:
            out.append(RequestStream(np.zeros(0), np.zeros(0), np.zeros(0)))
            continue
        t = np.concatenate([x[0] for x in parts])
        order = np.argsort(t, kind="stable")
        out.append(
            RequestStream(
                t[order],
                np.concatenate([x[1] for x in parts])[order],
                np.concatenate([x[2] for x in parts])[order],
            )
        )
    return out
