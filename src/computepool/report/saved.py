"""``cpool report FILE.json``: a saved simulation (``cpool simulate/compare --json``) or plan
(``cpool plan --json``) as a self-contained HTML page in the live dashboard's visual
language (same theme, key-figure tiles, region x accelerator grid, inline SVG charts).

Malformed input raises ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from computepool.report.html import kpis, page, section, table
from computepool.report.sim_page import fmt as _fmt
from computepool.report.sim_page import sim_sections, subtitle
from computepool.report.svg import Series, number, percent, stacked_bars
from computepool.report.theme import colour

SIM_FIELDS = {"policy": str, "pool": str, "utilization": dict}
PLAN_FIELDS = {"scenario": str, "years": list, "schedule": list, "cost_by_year_usd": dict}


# ---- loading and checking --------------------------------------------------------------
def _check(doc: Any, fields: Mapping[str, type], path: Path, where: str = "") -> None:
    for name, kind in fields.items():
        label = f"{where}{name}"
        if name not in doc:
            raise ValueError(f"{path}: field '{label}' is missing")
        if not isinstance(doc[name], kind):
            raise ValueError(
                f"{path}: field '{label}' should be a {_TYPE_NAMES[kind]}, "
                f"not {type(doc[name]).__name__}"
            )


_TYPE_NAMES = {str: "string", dict: "JSON object", list: "JSON list"}


def load(path: str | Path) -> tuple[str, Any]:
    """("simulation", [summary, ...]) or ("plan", plan dict); errors name file and field."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ValueError(f"{p}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{p}: cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{p}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if isinstance(doc, list):
        if not doc:
            raise ValueError(f"{p}: an empty list (expected simulation results)")
        for i, d in enumerate(doc):
            if not isinstance(d, dict):
                raise ValueError(f"{p}: [{i}] should be a simulation result object")
            _check(d, SIM_FIELDS, p, f"[{i}].")
            _check_sim(d, p, f"[{i}].")
        return "simulation", doc
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a JSON object or list, not {type(doc).__name__}")
    if "scenario" in doc or "schedule" in doc:
        _check(doc, PLAN_FIELDS, p)
        return "plan", doc
    if "policy" in doc or "utilization" in doc:
        _check(doc, SIM_FIELDS, p)
        _check_sim(doc, p, "")
        return "simulation", [doc]
    raise ValueError(
        f"{p}: neither a simulation result (cpool simulate --json: fields 'policy', "
        "'utilization') nor a plan (cpool plan --json: fields 'scenario', 'schedule')"
    )


def _check_sim(doc: Mapping, p: Path, where: str) -> None:
    for flavor, v in doc["utilization"].items():
        if not isinstance(v, int | float):
            raise ValueError(f"{p}: field '{where}utilization.{flavor}' should be a number")
    tl = doc.get("timeline")
    if tl is not None:
        if not isinstance(tl, dict) or not isinstance(tl.get("t_hours"), list):
            raise ValueError(f"{p}: field '{where}timeline.t_hours' should be a JSON list")
        for flavor, v in (tl.get("utilization") or {}).items():
            if not isinstance(v, list) or len(v) != len(tl["t_hours"]):
                raise ValueError(
                    f"{p}: field '{where}timeline.utilization.{flavor}' should be a list as "
                    "long as timeline.t_hours"
                )
    _check_lists(doc, "jct", ("fraction", "hours"), p, where)
    _check_lists(doc, "fragmentation", ("t", "fragmented_share", "allocated_share"), p, where)


def _check_lists(doc: Mapping, name: str, keys: Sequence[str], p: Path, where: str) -> None:
    """An optional ``name`` object whose ``keys`` are equally long lists of numbers."""
    obj = doc.get(name)
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise ValueError(f"{p}: field '{where}{name}' should be a JSON object")
    lengths = set()
    for k in keys:
        v = obj.get(k)
        if not isinstance(v, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v
        ):
            raise ValueError(f"{p}: field '{where}{name}.{k}' should be a list of numbers")
        lengths.add(len(v))
    if len(lengths) > 1:
        raise ValueError(
            f"{p}: fields '{where}{name}.{'/'.join(keys)}' should be lists of the same length"
        )


# ---- simulation ------------------------------------------------------------------------
def render_simulation(
    docs: Sequence[Mapping[str, Any]],
    title: str | None = None,
    source: str = "",
    generator: str = "",
) -> str:
    """The simulation report (``report/sim_page.py``) of result documents."""
    if not docs:
        raise ValueError("no results to report")
    return page(title or "Simulation", subtitle(docs, source), sim_sections(docs), generator)


# ---- plan ------------------------------------------------------------------------------
def _by_year(
    schedule: list[dict], years: list[int], key: str, value: str
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    ix = {y: i for i, y in enumerate(years)}
    for row in schedule:
        series = out.setdefault(str(row.get(key, "?")), [0.0] * len(years))
        if row.get("year") in ix:
            series[ix[row["year"]]] += float(row.get(value, 0) or 0)
    return out


def _bars(years: list[int], series: Mapping[str, Sequence[float]], fmt=number, marks=()) -> str:
    return stacked_bars(
        [str(y) for y in years],
        [Series(k, list(v), colour(i)) for i, (k, v) in enumerate(series.items())],
        y_fmt=fmt,
        marks=marks,
    )


def _plan_sections(doc: Mapping) -> list[str]:
    years = [int(y) for y in doc["years"]]
    cost = doc["cost_by_year_usd"]
    in_service = _by_year(doc["schedule"], years, "chip", "cards_in_service")
    last = {k: v[-1] for k, v in in_service.items()} if years else {}
    power = doc.get("power_mw") or {}
    peak = max((sum(v[i] for v in power.values()) for i in range(len(years))), default=0.0)
    tiles = kpis(
        [
            ("net present cost", "$" + number(float(doc.get("npv_usd") or 0.0)), doc["scenario"]),
            ("feasible", "yes" if doc.get("feasible") else "no", "meets every target" if doc.get("feasible") else "see below"),
            ("cards in service", f"{sum(last.values()):,.0f}", f"in {years[-1]}" if years else ""),
            ("peak power", f"{peak:,.1f} MW", "all sites"),
            ("years", f"{years[0]}–{years[-1]}" if years else "–", f"{doc.get('purchase_lines', len(doc['schedule']))} purchases"),
        ]
    )  # fmt: skip
    out = [tiles]
    why = doc.get("explanation") or doc.get("binding") or []
    if why:
        box = "alert" if not doc.get("feasible") else "ok"
        items = "".join(f"<li>{html.escape(str(x))}</li>" for x in why)
        title = (
            "Why the scenario is infeasible" if not doc.get("feasible") else "What limits this plan"
        )
        out.append(section(title, f"<div class='{box}'><ul style='margin:0'>{items}</ul></div>"))
    parts = {
        k: cost.get(k, [0.0] * len(years))
        for k in ("capex", "site_build", "chip_site_fixed", "energy_and_carbon")
    }
    usd = lambda v: "$" + number(v)  # noqa: E731
    out.append(section("Cost by year (USD)", _bars(years, parts, usd)))
    out.append(section("Cards in service by chip", _bars(years, in_service)))
    if power:
        out.append(section("Power by site (MW)", _bars(years, power)))
    share = doc.get("vendor_share") or {}
    if share:
        out.append(section("Vendor mix (share of compute)", _bars(years, share, percent)))
    targets = doc.get("targets") or []
    if targets:
        rows = [
            [t.get("name", "?"), t.get("unit", ""), _fmt(t.get("value"), "{:,.1f}"), _fmt(t.get("achieved"), "{:,.1f}"),
             "yes" if (t.get("achieved") or 0) >= (t.get("value") or 0) * (1 - 1e-6) else "no"]
            for t in targets
        ]  # fmt: skip
        out.append(section("Targets", table(["target", "unit", "asked", "achieved", "met"], rows)))
    sched = [
        [r.get("year"), r.get("site"), r.get("chip"), r.get("nodes"), r.get("cards"), r.get("cards_in_service")]
        for r in doc["schedule"]
    ]  # fmt: skip
    out.append(
        section(
            "Schedule",
            table(
                ["year", "site", "chip", "nodes bought", "cards bought", "cards in service"], sched
            ),
        )
    )
    sweep = doc.get("sweep")
    if isinstance(sweep, dict) and sweep.get("points"):
        rows = [
            [_fmt(pt.get("value"), "{:g}"), "yes" if pt.get("feasible") else "no", usd(float(pt.get("npv_usd") or 0))]
            for pt in sweep["points"]
        ]  # fmt: skip
        out.append(
            section(
                f"Sweep of {sweep.get('param', '?')}",
                table(["value", "feasible", "net present cost"], rows),
            )
        )
    return out


def render(path: str | Path, title: str | None = None, generator: str = "") -> str:
    kind, doc = load(path)
    name = Path(path).name
    if kind == "plan":
        return page(
            title or f"Plan · {doc['scenario']}",
            f"capacity plan from {name}",
            _plan_sections(doc),
            generator,
        )
    return render_simulation(doc, title, name, generator)
