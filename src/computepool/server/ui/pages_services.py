"""The dashboard's Services page: each LLM service the viewer may use, with its replicas
(ready / desired), load, TTFT objective attainment through the gateway, tokens and cost
(a tenant: its own tokens and cost; the admin: everyone's)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from computepool.server.service_directory import SHARED
from computepool.server.token_meter import tokens_by_service
from computepool.server.ui.scope import Viewer
from computepool.server.ui.views import Page, Panel, e, num, rows_table, usd


def _attainment(value: float | None, slo: float | None) -> str:
    if value is None or slo is None:
        return "<span class='muted'>–</span>"
    return f"{value * 100:.1f}% <span class='muted'>(TTFT ≤ {slo:g} s)</span>"


def _cold(x) -> str:
    """Cold starts of a service that scales to zero (count, the latest's seconds)."""
    if not x.scale_to_zero:
        return "<span class='muted'>always on</span>"
    last = (
        ""
        if x.cold_start_s is None
        else f" <span class='muted'>(last {x.cold_start_s:.2f} s)</span>"
    )
    return f"{x.cold_starts:,}{last}"


def services_page(s: Session, gateway, viewer: Viewer) -> Page:
    infos = [x for x in gateway.directory.services() if x.usable_by(viewer.tenant, viewer.is_admin)]
    used = tokens_by_service(s, viewer.scope)
    rows = []
    for x in infos:
        requests, tokens, cost = used.get(x.name, (0, 0, 0.0))
        rows.append(
            [
                f"<b>{e(x.name)}</b>",
                e("shared" if x.tenant in SHARED else x.tenant),
                e(x.model or "–"),
                f"{x.ready:,} / {x.desired:,}",
                "–" if x.load_rps is None else f"{num(x.load_rps, 2)} req/s",
                _attainment(gateway.attainment(x.name), x.ttft_slo_s),
                _cold(x),
                f"{requests:,}",
                f"{tokens:,}",
                usd(cost),
            ]
        )
    whose = "everyone's" if viewer.is_admin else "yours"
    table = rows_table(
        ["Service", "Owner", "Model", "Replicas ready / desired", "Load", "SLO attainment",
         "Cold starts", f"Requests ({whose})", f"Tokens ({whose})", f"Cost ({whose})"],
        rows, left=3,
    )  # fmt: skip
    intro = (
        "<h1>Services</h1><p class='muted'>LLM services behind the OpenAI-compatible gateway "
        "(<code>/v1/models</code>, <code>/v1/completions</code>, "
        "<code>/v1/chat/completions</code>; the <code>model</code> is the service's name). "
        "SLO attainment: streamed requests through the gateway whose first token came within "
        "the service's TTFT objective, since the server started. Cold starts: requests that found "
        "a service scaled to zero waited for a replica to start (first held request to first "
        "ready replica).</p>"
    )
    return Page("Services", "services", intro, (Panel("services", "Services", table),))
