"""Latency-bound requests: which region and flavor answers in time, or run on the device.

A request (vehicle/robot offload, a cockpit assistant turn) comes from a site over an access
network, carries data of some class (so residency applies as for jobs), needs ``work_h100_ms``
milliseconds of one H100's time, and must be answered within ``deadline_ms`` end to end:

    total = access RTT + RTT(site, region) [+ cross-border extra] + queueing + compute

``route`` picks, among the flavors the data may legally go to, the one with the smallest total
that meets the deadline (``prefer="latency"``) or the cheapest one that meets it
(``prefer="cost"``); if none meets it the answer is ``edge``: run on the device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from computepool.admission.rulebook import RulebookError, field_path
from computepool.catalog.regions import derived_rtt_ms, great_circle_km, load_network
from computepool.catalog.schema import RttModel
from computepool.model.job import Dataset
from computepool.model.pool import Pool
from computepool.model.region import Region

EDGE = "edge"


class AccessNetwork(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rtt_ms: float = Field(ge=0)
    source: str = Field(min_length=1)


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    jurisdiction: str = Field(min_length=1)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class LatencyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    access_networks: dict[str, AccessNetwork]
    cross_border_extra_ms: float = Field(0.0, ge=0)
    cross_border_source: str = ""
    sites: tuple[Site, ...] = ()


@dataclass(frozen=True)
class LatencyModel:
    """Access networks, sites and the catalog's RTT model."""

    access: Mapping[str, AccessNetwork]
    sites: Mapping[str, Site]
    rtt_model: RttModel
    cross_border_extra_ms: float = 0.0

    def site(self, text: str) -> Site:
        """A named site, or ``LAT,LON[,JURISDICTION]``."""
        if text in self.sites:
            return self.sites[text]
        parts = [p.strip() for p in text.split(",")]
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            known = ", ".join(sorted(self.sites))
            raise ValueError(
                f"source {text!r}: not a known site ({known}) nor LAT,LON[,JURISDICTION]"
            ) from None
        jur = parts[2] if len(parts) > 2 else ""
        return Site(name=text, jurisdiction=jur or "?", latitude=lat, longitude=lon)

    def access_ms(self, network: str) -> float:
        if network not in self.access:
            known = ", ".join(sorted(self.access))
            raise ValueError(f"network {network!r}: unknown (known: {known})")
        return self.access[network].rtt_ms

    def rtt_ms(self, site: Site, region: Region, network: str) -> float:
        """Round trip from a device at ``site`` over ``network`` to ``region``."""
        here = Region(site.name, site.jurisdiction, 0.0, 1.0, 0.0, site.latitude, site.longitude)
        rtt = derived_rtt_ms(great_circle_km(here, region), self.rtt_model)
        cross = (site.jurisdiction == "CN") != (region.jurisdiction == "CN")
        return self.access_ms(network) + rtt + (self.cross_border_extra_ms if cross else 0.0)


def load_latency_model(path: str | Path | None = None) -> LatencyModel:
    if path is None:
        label = "latency.yaml (shipped)"
        text = (resources.files("computepool.catalog") / "data" / "latency.yaml").read_text()
    else:
        p = Path(path)
        if not p.exists():
            raise RulebookError(str(p), [("(file)", "no such file")])
        label, text = str(p), p.read_text()
    try:
        doc = LatencyFile.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise RulebookError(
            label, [(field_path(e["loc"]), e["msg"]) for e in exc.errors()]
        ) from None
    return LatencyModel(
        access=dict(doc.access_networks),
        sites={s.name: s for s in doc.sites},
        rtt_model=load_network().rtt_model,
        cross_border_extra_ms=doc.cross_border_extra_ms,
    )


def compute_ms(pool: Pool, work_h100_ms: float) -> np.ndarray:
    """Milliseconds one accelerator of each flavor needs for ``work_h100_ms`` of H100 work."""
    speed = np.array([a.h100_equiv * a.stack_efficiency for a in pool.flavor_accelerators])
    with np.errstate(divide="ignore"):
        return np.where(speed > 0, work_h100_ms / speed, np.inf)


def erlang_c_wait_ms(servers: int, utilisation: float, service_ms: float) -> float:
    """Mean queueing delay of an M/M/c queue (Erlang C); inf at or above saturation."""
    c = int(servers)
    if c <= 0 or utilisation >= 1.0:
        return math.inf
    if utilisation <= 0:
        return 0.0
    a = utilisation * c
    term, total = 1.0, 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c / (1 - utilisation)
    p_wait = last / (total + last)
    return p_wait * service_ms / (c - a)


@dataclass(frozen=True)
class Request:
    source: Site
    deadline_ms: float
    work_h100_ms: float
    network: str = "5g"
    data: tuple[Dataset, ...] = ()
    stacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    flavor: str
    region: str
    legal: bool
    rule: str
    rtt_ms: float
    queue_ms: float
    compute_ms: float
    total_ms: float
    cost_usd: float
    meets: bool


@dataclass(frozen=True)
class Route:
    #: Flavor name, or ``edge`` (run on the device).
    target: str
    total_ms: float | None
    reason: str
    options: tuple[Option, ...] = field(default=())

    @property
    def on_edge(self) -> bool:
        return self.target == EDGE


def route(
    req: Request,
    pool: Pool,
    model: LatencyModel,
    legal: np.ndarray,
    rules: Sequence[str],
    queue_ms: np.ndarray | None = None,
    prefer: Literal["latency", "cost"] = "latency",
) -> Route:
    """Choose a flavor (or the edge) for one request. ``legal``/``rules``: per flavor, from the
    residency check; ``queue_ms``: expected queueing per flavor (default none)."""
    F = len(pool.flavors)
    q = np.zeros(F) if queue_ms is None else np.asarray(queue_ms, dtype=float)
    comp = compute_ms(pool, req.work_h100_ms)
    rtt = {r: model.rtt_ms(req.source, reg, req.network) for r, reg in pool.regions.items()}
    price = pool.flavor_price
    options = []
    for f, flv in enumerate(pool.flavors):
        ok_stack = not req.stacks or pool.flavor_stack[f] in req.stacks
        total = rtt[flv.region] + q[f] + comp[f]
        usd = price[f] * comp[f] / 3.6e6
        is_legal = bool(legal[f]) and ok_stack
        meets = is_legal and bool(total <= req.deadline_ms)
        rule = rules[f] if ok_stack else "stack"
        options.append(
            Option(
                flv.name,
                flv.region,
                is_legal,
                rule,
                float(rtt[flv.region]),
                float(q[f]),
                float(comp[f]),
                float(total),
                float(usd),
                bool(meets),
            )
        )
    good = [o for o in options if o.meets]
    if not good:
        legal_opts = [o for o in options if o.legal]
        if not legal_opts:
            why = "no region may legally process this request's data: run on the device"
        else:
            best = min(legal_opts, key=lambda o: o.total_ms)
            why = (
                f"fastest legal option {best.flavor} needs {best.total_ms:.0f} ms > deadline "
                f"{req.deadline_ms:.0f} ms: run on the device"
            )
        return Route(EDGE, None, why, tuple(options))
    key = (lambda o: (o.cost_usd, o.total_ms)) if prefer == "cost" else (lambda o: o.total_ms)
    best = min(good, key=key)
    why = f"{best.flavor}: {best.total_ms:.0f} ms <= {req.deadline_ms:.0f} ms (allowed by {best.rule})"
    return Route(best.flavor, best.total_ms, why, tuple(options))
