"""Region: a place with one jurisdiction, an electricity price, a PUE and a grid carbon intensity."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    jurisdiction: str
    electricity_usd_per_kwh: float
    pue: float
    carbon_g_per_kwh: float
    latitude: float = 0.0
    longitude: float = 0.0
    #: Outbound data-transfer price, USD per GB (charged when a job reads data stored elsewhere).
    egress_usd_per_gb: float = 0.0
    source: str = ""
