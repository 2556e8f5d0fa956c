"""Rich tables for the services of a simulated run."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from computepool.cli.common import console
from computepool.cli.output import Col, build_table, print_table


def _f(x: Any, pattern: str) -> str:
    if x is None:
        return "-"
    try:
        return pattern.format(x)
    except (TypeError, ValueError):
        return str(x)


def _shape(r: dict[str, Any]) -> str:
    if r.get("served_by"):
        return f"in {r['served_by']}"
    if r.get("prefilled_by") and not r.get("accelerator_hours_by_shape"):
        return f"prompts in {r['prefilled_by']}"
    by_shape = r.get("accelerator_hours_by_shape")
    if r["status"] not in HOLDS or not by_shape:
        return "-"
    main = max(by_shape, key=by_shape.get)
    return main + (f" +{len(by_shape) - 1}" if len(by_shape) > 1 else "")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _ok(r: dict[str, Any], text: str) -> str:
    return text if r["status"] == "ok" else "-"


#: Row statuses that hold accelerators (a service, a mux group, a prefill pool).
HOLDS = ("ok", "group", "prefill pool")


def _held(r: dict[str, Any], text: str) -> str:
    return text if r["status"] in HOLDS else "-"


def _status(r: dict[str, Any]) -> str:
    if r["status"] == "ok":
        return _f(r["slo_attainment"], "{:.2%}")
    return "rejected" if r["status"] == "rejected" else r["status"]


SERVICE_COLUMNS = [
    Col("SERVICE", lambda r: escape(r["name"]), key=True),
    Col("MODEL", lambda r: escape(r["model"]), key=True, optional=True),
    Col("REQUESTS", lambda r: f"{r['requests']:,}", key=True, right=True),
    Col("SLO ATT.", _status, key=True, right=True),
    Col("TTFT P99", lambda r: _ok(r, _f(r.get("ttft_p99_s"), "{:.2f} s")), key=True, right=True),
    Col("TBT P99", lambda r: _ok(r, _f(_ms(r.get("tbt_p99_s")), "{:.0f} ms")), key=True,
        right=True, optional=True),
    Col("ACC-H", lambda r: _held(r, _f(r.get("accelerator_hours"), "{:,.1f}")), key=True,
        right=True),
    Col("REPL", lambda r: _held(r, _f(r.get("replicas_max"), "{}")), key=True, right=True,
        optional=True),
    Col("MAIN SHAPE", lambda r: escape(_shape(r)), wrap=True, min_free=22),
]  # fmt: skip


def print_services(rows: list[dict[str, Any]], total: dict[str, Any]) -> None:
    """One row per service (a rejected one has no latency or replica figures: dashes, and
    its reason below); in 80 columns MODEL, TBT and REPL give way to the main shape."""
    title = f"services ({total['mode']})"
    print_table(build_table(SERVICE_COLUMNS, rows, False, console.width, title))
    for r in rows:
        if r["status"] == "rejected":
            console.print(f"[bold red]rejected:[/] {escape(r['reason'])}", highlight=False)
    console.print(
        f"services: {total['requests']:,} requests, SLO attainment {total['slo_attainment']:.2%}"
        f" (worst service {total['slo_attainment_min_service']:.2%}), "
        f"{total['accelerator_hours']:,.1f} accelerator-hours held "
        f"(peak {total['peak_accelerators']:,.0f} accelerators), "
        f"pool utilisation over the services' horizon {total['pool_utilization']:.1%}",
        highlight=False,
    )
