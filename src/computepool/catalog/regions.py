"""Regions (``data/regions.yaml``) and the network between them (``data/network.yaml``).

Every pair of regions gets a round-trip time: measured where ``network.yaml`` lists one, else
derived from the great-circle distance (``derived_rtt_ms``). Keys are ``(a, b)`` with ``a <= b``,
as ``Pool.rtt_ms`` and ``Pool.bandwidth_gbps`` expect.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from computepool.catalog.accelerators import load_fx
from computepool.catalog.errors import CatalogFileError, Problem, problems_from_validation
from computepool.catalog.files import as_ref, label, read_yaml_mapping
from computepool.catalog.schema import BandwidthModel, NetworkFile, RegionRow, RegionsFile, RttModel
from computepool.model.region import Region

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True, slots=True)
class Link:
    """What the catalog knows about the path between two regions (``a <= b``)."""

    a: str
    b: str
    rtt_ms: float
    bandwidth_gbps: float
    #: True where the RTT comes from the distance formula rather than a measured figure.
    derived: bool
    source: str = ""


@dataclass(frozen=True)
class Network:
    rtt_model: RttModel
    bandwidth: BandwidthModel
    #: Measured or claimed figures from the file, keyed ``(a, b)`` with ``a <= b``.
    links: Mapping[tuple[str, str], Any]


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def region_from_row(row: RegionRow) -> Region:
    return Region(**row.model_dump())


def load_regions(path: str | Path | None = None) -> dict[str, Region]:
    """Regions by name, from the shipped catalog or the YAML file at ``path``."""
    ref = as_ref(path, "regions.yaml")
    doc = read_yaml_mapping(ref)
    try:
        parsed = RegionsFile.model_validate(doc, context={"fx": load_fx()})
    except ValidationError as exc:
        raise CatalogFileError(label(ref), problems_from_validation(exc)) from exc
    out: dict[str, Region] = {}
    problems = []
    for i, row in enumerate(parsed.regions):
        if row.name in out:
            problems.append(Problem(f"regions[{i}].name", f"duplicate region {row.name!r}"))
        out[row.name] = region_from_row(row)
    if problems:
        raise CatalogFileError(label(ref), problems)
    return out


def load_network(path: str | Path | None = None) -> Network:
    """The RTT model, bandwidth assumptions and measured links (``data/network.yaml``)."""
    ref = as_ref(path, "network.yaml")
    try:
        parsed = NetworkFile.model_validate(read_yaml_mapping(ref))
    except ValidationError as exc:
        raise CatalogFileError(label(ref), problems_from_validation(exc)) from exc
    links: dict[tuple[str, str], Any] = {}
    problems = []
    for i, row in enumerate(parsed.links):
        key = pair(row.a, row.b)
        if row.a == row.b:
            problems.append(Problem(f"links[{i}].b", "a link joins two different regions"))
        elif key in links:
            problems.append(Problem(f"links[{i}]", f"duplicate link {key[0]} - {key[1]}"))
        links[key] = row
    if problems:
        raise CatalogFileError(label(ref), problems)
    return Network(parsed.rtt_model, parsed.bandwidth, links)


def great_circle_km(a: Region, b: Region) -> float:
    """Haversine distance between two regions' coordinates."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def derived_rtt_ms(distance_km: float, model: RttModel) -> float:
    """``2 * d / fiber_km_per_ms * route_factor + overhead_ms``."""
    return 2 * distance_km / model.fiber_km_per_ms * model.route_factor + model.overhead_ms


def default_bandwidth(a: Region, b: Region, model: BandwidthModel) -> float:
    if a.name == b.name:
        return model.same_region_gbps
    if a.jurisdiction == b.jurisdiction:
        return model.same_jurisdiction_gbps
    return model.cross_jurisdiction_gbps


def link_between(a: Region, b: Region, network: Network) -> Link:
    x, y = pair(a.name, b.name)
    if x == y:
        m = network.rtt_model
        bw = network.bandwidth.same_region_gbps
        return Link(x, y, m.same_region_ms, bw, True, m.source)
    known = network.links.get((x, y))
    rtt = getattr(known, "rtt_ms", None)
    bw = getattr(known, "bandwidth_gbps", None)
    derived = rtt is None
    if rtt is None:
        rtt = round(derived_rtt_ms(great_circle_km(a, b), network.rtt_model), 2)
    if bw is None:
        bw = default_bandwidth(a, b, network.bandwidth)
    source = known.source if known is not None else network.rtt_model.source
    return Link(x, y, rtt, bw, derived, source)


def links_for(regions: Iterable[Region], network: Network) -> dict[tuple[str, str], Link]:
    """A ``Link`` for every pair of ``regions``, including each region with itself."""
    rs = sorted(regions, key=lambda r: r.name)
    return {
        pair(a.name, b.name): link_between(a, b, network) for i, a in enumerate(rs) for b in rs[i:]
    }


def rtt_matrix(links: Mapping[tuple[str, str], Link]) -> dict[tuple[str, str], float]:
    return {k: v.rtt_ms for k, v in links.items()}


def bandwidth_matrix(links: Mapping[tuple[str, str], Link]) -> dict[tuple[str, str], float]:
    return {k: v.bandwidth_gbps for k, v in links.items()}
