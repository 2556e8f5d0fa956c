"""Rich tables for the services of a simulated run."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from computepool.cli.common import console


def _f(x: Any, pattern: str) -> str:
    if x is None:
        return "-"
    try:
        return pattern.format(x)
    except (TypeError, ValueError):
        return str(x)


def print_services(rows: list[dict[str, Any]], total: dict[str, Any]) -> None:
    table = Table(title=f"services ({total['mode']})")
    for col in ("service", "model", "requests", "SLO att.", "TTFT p99", "TBT p99", "acc-h",
                "max repl.", "main shape"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("service", "model", "shapes") else "right")
    rejected = []
    for r in rows:
        if r["status"] != "ok":
            table.add_row(r["name"], r["model"], f"{r['requests']:,}", "rejected", "-", "-", "-",
                          "-", "-")  # fmt: skip
            rejected.append(r)
            continue
        by_shape = r["accelerator_hours_by_shape"]
        shapes = max(by_shape, key=by_shape.get) if by_shape else "-"
        if len(by_shape) > 1:
            shapes += f" +{len(by_shape) - 1}"
        table.add_row(
            r["name"],
            r["model"],
            f"{r['requests']:,}",
            _f(r["slo_attainment"], "{:.2%}"),
            _f(r["ttft_p99_s"], "{:.2f} s"),
            _f(r["tbt_p99_s"] * 1000 if r["tbt_p99_s"] is not None else None, "{:.0f} ms"),
            _f(r["accelerator_hours"], "{:,.1f}"),
            str(r["replicas_max"]),
            shapes,
        )
    console.print(table)
    for r in rejected:
        console.print(f"[bold red]rejected:[/] {r['reason']}", highlight=False)
    console.print(
        f"services: {total['requests']:,} requests, SLO attainment {total['slo_attainment']:.2%}"
        f" (worst service {total['slo_attainment_min_service']:.2%}), "
        f"{total['accelerator_hours']:,.1f} accelerator-hours held "
        f"(peak {total['peak_accelerators']:,.0f} accelerators), "
        f"pool utilisation over the services' horizon {total['pool_utilization']:.1%}",
        highlight=False,
    )
