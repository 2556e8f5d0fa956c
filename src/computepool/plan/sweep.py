"""Sensitivity: solve a scenario again for each value of one parameter.

A sweep spec is ``PARAM=VALUES`` where VALUES is ``START:STOP:STEPS`` (inclusive, evenly
spaced) or a comma list. PARAM is one of

- ``supply:NAME`` - multiply the yearly supply limit of chip NAME, or of every chip of vendor
  NAME (each must have a limit), e.g. ``supply:nvidia=1:0:6`` for NVIDIA supply 100% -> 0%;
- ``price:NAME`` - multiply the capex of a chip or of a vendor's chips;
- ``target`` - multiply every target;
- ``electricity`` - multiply every site's electricity price;
- ``discount_rate`` - set the discount rate;
- ``vendor_cap`` - set the vendor concentration cap (every vendor);
- ``budget`` - multiply the budget (total and per year).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from computepool.plan.result import Plan, solve_plan
from computepool.plan.scenario import Chip, Scenario

SIMPLE = ("target", "electricity", "discount_rate", "vendor_cap", "budget")
PER_CHIP = ("supply", "price")


class SweepError(ValueError):
    pass


@dataclass(frozen=True)
class SweepSpec:
    param: str
    values: tuple[float, ...]

    @property
    def label(self) -> str:
        return self.param


@dataclass(frozen=True)
class SweepPoint:
    value: float
    plan: Plan


def parse_sweep(text: str) -> SweepSpec:
    param, sep, vals = text.partition("=")
    param = param.strip()
    if not sep or not vals.strip():
        raise SweepError(f"--sweep {text!r}: expected PARAM=START:STOP:STEPS or PARAM=V1,V2,...")
    head = param.split(":", 1)[0]
    if param not in SIMPLE and not (head in PER_CHIP and ":" in param):
        raise SweepError(
            f"--sweep {text!r}: unknown parameter {param!r}; known: "
            + ", ".join([*SIMPLE, "supply:CHIP_OR_VENDOR", "price:CHIP_OR_VENDOR"])
        )
    try:
        if ":" in vals:
            a, b, n = vals.split(":")
            steps = int(n)
            if steps < 2:
                raise ValueError
            values = tuple(float(v) for v in np.linspace(float(a), float(b), steps))
        else:
            values = tuple(float(v) for v in vals.split(","))
    except ValueError:
        raise SweepError(
            f"--sweep {text!r}: values must be START:STOP:STEPS (STEPS >= 2) or numbers "
            "separated by commas"
        ) from None
    return SweepSpec(param, values)


def _chips_named(sc: Scenario, name: str, what: str) -> set[str]:
    hit = {c.name for c in sc.chips if name in (c.name, c.vendor)}
    if not hit:
        raise SweepError(f"--sweep {what}:{name}: no chip option or vendor called {name!r}")
    return hit


def _map_chips(sc: Scenario, names: set[str], fn: Callable[[Chip], Chip]) -> Scenario:
    return dataclasses.replace(sc, chips=tuple(fn(c) if c.name in names else c for c in sc.chips))


def apply(sc: Scenario, spec: SweepSpec, value: float) -> Scenario:
    """The scenario with ``spec.param`` set to (or scaled by) ``value``."""
    p = spec.param
    if p == "target":
        return dataclasses.replace(
            sc, targets=tuple(dataclasses.replace(t, value=t.value * value) for t in sc.targets)
        )
    if p == "electricity":
        return dataclasses.replace(
            sc,
            sites=tuple(
                dataclasses.replace(s, electricity_usd_per_kwh=s.electricity_usd_per_kwh * value)
                for s in sc.sites
            ),
        )
    if p == "discount_rate":
        return dataclasses.replace(sc, discount_rate=value)
    if p == "vendor_cap":
        return dataclasses.replace(sc, vendor_caps={v: value for v in sc.vendors})
    if p == "budget":
        per_year = tuple(None if b is None else b * value for b in sc.budget_per_year_usd)
        total = None if sc.budget_total_usd is None else sc.budget_total_usd * value
        return dataclasses.replace(sc, budget_total_usd=total, budget_per_year_usd=per_year)
    what, name = p.split(":", 1)
    names = _chips_named(sc, name, what)
    if what == "supply":
        unlimited = sorted(c.name for c in sc.chips if c.name in names and None in c.supply)
        if unlimited:
            raise SweepError(
                f"--sweep {p}: chip option(s) {', '.join(unlimited)} have no supply limit in some "
                "year; give them a yearly supply in the scenario to sweep it"
            )
        return _map_chips(
            sc,
            names,
            lambda c: dataclasses.replace(c, supply=tuple(s * value for s in c.supply)),  # type: ignore[operator]
        )
    return _map_chips(
        sc, names, lambda c: dataclasses.replace(c, capex_usd=tuple(x * value for x in c.capex_usd))
    )


def run_sweep(
    sc: Scenario,
    spec: SweepSpec,
    time_limit: float = 60.0,
    mip_rel_gap: float = 1e-3,
    on_point: Callable[[int, int], None] | None = None,
) -> list[SweepPoint]:
    apply(sc, spec, spec.values[0])  # validate before solving anything
    out = []
    for i, v in enumerate(spec.values):
        out.append(SweepPoint(v, solve_plan(apply(sc, spec, v), time_limit, mip_rel_gap)))
        if on_point is not None:
            on_point(i + 1, len(spec.values))
    return out
