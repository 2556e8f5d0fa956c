"""The clusters of a federated pool on the overview page: each agent's session and health."""

from __future__ import annotations

import time

from computepool.server.ui.scope import Viewer
from computepool.server.ui.views import Panel, e, rows_table, when

STATE_BADGE = {"ready": "#16a34a", "lost": "#dc2626"}


def clusters_panel(clusters: list[dict], viewer: Viewer, now: float | None = None) -> Panel:
    """A table of clusters: state, regions, nodes, lease left, workers running, last heartbeat
    (admins also see the agent and the reports refused from it)."""
    now = time.time() if now is None else now
    headers = ["cluster", "state", "regions", "nodes", "workers", "lease left", "last heartbeat"]
    if viewer.is_admin:
        headers += ["epoch", "refused reports", "agent"]
    rows = []
    for c in clusters:
        colour = STATE_BADGE.get(c["state"], "#6b7280")
        state = f"<span style='color:{colour};font-weight:600'>{e(c['state'])}</span>"
        if c.get("lost"):
            state += f" <span class='sub'>{e(c['lost'])}</span>"
        regions = ", ".join(f"{e(k)} ({e(v)})" for k, v in c.get("regions", {}).items())
        row = [
            e(c["name"]),
            state,
            regions,
            f"{c.get('nodes', 0):,}",
            f"{c.get('health', {}).get('running', 0):,}",
            f"{c.get('lease_left_s', 0):.1f} s",
            when(c.get("last_seen"), now),
        ]
        if viewer.is_admin:
            row += [
                str(c.get("epoch", "")),
                f"{c.get('refused_reports', 0):,}",
                e(c.get("agent", "")),
            ]
        rows.append(row)
    body = rows_table(headers, rows) if rows else "<p class='sub'>no agent has registered yet</p>"
    return Panel("clusters", "Clusters (federation)", body)
