"""The one visual language of computepool: colours and CSS shared by the live dashboard
(``cpool serve`` at ``/``) and the self-contained HTML reports (``cpool report``,
``cpool simulate --report``, ``cpool plan --report``)."""

from __future__ import annotations

#: Series colours (flavors, tenants, chips), in order.
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"]
#: Four more for charts with many series (the 12 flavors of the demo pool).
PALETTE_WIDE = [*PALETTE, "#4f46e5", "#65a30d", "#0d9488", "#a16207"]

#: Job status -> colour (pills, timelines).
STATUS_COLOURS = {
    "queued": "#94a3b8",
    "admitted": "#d97706",
    "running": "#2563eb",
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#64748b",
    "rejected": "#9f1239",
    "preempted": "#ea580c",
    "requeued": "#ea580c",
    "adopted": "#0891b2",
}

INK, MUTED, LINE, GRID = "#1f2933", "#616e7c", "#e4e7eb", "#eef1f4"
FONT = "system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif"


#: Line dash patterns (SVG ``stroke-dasharray``): after every colour of ``PALETTE_WIDE`` has
#: been used once, lines repeat the colours with the next pattern, so no two series look alike.
DASHES = ("", "7 3", "2 3", "9 3 2 3")


def colour(i: int) -> str:
    return PALETTE_WIDE[i % len(PALETTE_WIDE)]


def dash(i: int) -> str:
    """The dash pattern of series ``i`` (solid for the first ``len(PALETTE_WIDE)``)."""
    return DASHES[(i // len(PALETTE_WIDE)) % len(DASHES)]


def heat(fraction: float) -> str:
    """Background colour of a utilisation cell: white (idle) to deep blue (full)."""
    f = min(max(fraction, 0.0), 1.0)
    lo, hi = (248, 250, 252), (29, 78, 216)
    r, g, b = (round(a + (c - a) * f) for a, c in zip(lo, hi, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_ink(fraction: float) -> str:
    return "#ffffff" if fraction >= 0.55 else INK


CSS = f"""
:root{{--ink:{INK};--muted:{MUTED};--line:{LINE};--bg:#f4f6f8;--card:#fff;--accent:#2563eb;
--nav:#0f172a;--ok:#16a34a;--bad:#dc2626;--warn:#d97706}}
*{{box-sizing:border-box}}
body{{font-family:{FONT};margin:0;color:var(--ink);background:var(--bg);font-size:14px;
line-height:1.45}}
a{{color:var(--accent);text-decoration:none}} a:hover{{text-decoration:underline}}
header.top{{background:var(--nav);color:#e2e8f0;display:flex;align-items:center;gap:1.4rem;
padding:.55rem 1.5rem;position:sticky;top:0;z-index:5}}
header.top .brand{{font-weight:700;color:#fff;letter-spacing:.01em;font-size:1.05rem}}
header.top .brand span{{color:#60a5fa}}
header.top nav{{display:flex;gap:.2rem;flex-wrap:wrap}}
header.top nav a{{color:#cbd5e1;padding:.3rem .65rem;border-radius:6px}}
header.top nav a:hover{{background:#1e293b;text-decoration:none;color:#fff}}
header.top nav a.on{{background:#1e3a8a;color:#fff}}
header.top .who{{margin-left:auto;display:flex;gap:.8rem;align-items:center;color:#94a3b8}}
header.top .who b{{color:#e2e8f0;font-weight:600}}
header.top button{{background:none;border:1px solid #334155;color:#cbd5e1;border-radius:6px;
padding:.2rem .6rem;cursor:pointer;font:inherit}}
main{{max-width:1240px;margin:0 auto;padding:1.2rem 1.5rem 3rem}}
h1{{font-size:1.45rem;margin:.3rem 0 .1rem}}
h2{{font-size:1.02rem;margin:0 0 .7rem;color:#334155}}
.sub,.muted{{color:var(--muted)}} .sub{{margin:.1rem 0 1rem}}
.note{{color:var(--muted);font-size:.85rem}}
.card{{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:1rem 1.15rem;margin:0 0 1rem;box-shadow:0 1px 2px rgba(15,23,42,.04);overflow-x:auto}}
.grid{{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}}
.grid>.card{{margin:0}}
.kpis{{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.8rem;
margin-bottom:1rem}}
.kpi{{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:.75rem 1rem}}
.kpi .v{{font-size:1.55rem;font-weight:650;font-variant-numeric:tabular-nums}}
.kpi .l{{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.04em}}
.kpi .d{{color:var(--muted);font-size:.8rem}}
table{{border-collapse:collapse;width:100%;font-size:.9rem}}
th,td{{padding:.38rem .6rem;border-bottom:1px solid var(--line);text-align:right;
vertical-align:top;font-variant-numeric:tabular-nums}}
th:first-child,td:first-child{{text-align:left}} td.l,th.l,td.t{{text-align:left}} td.t{{color:var(--muted)}}
thead th{{background:#f8fafc;color:#475569;font-weight:600;font-size:.8rem;
text-transform:uppercase;letter-spacing:.03em}}
tbody tr:hover{{background:#f8fafc}}
table.heat td{{text-align:center;min-width:64px;border:2px solid #fff;border-radius:4px}}
table.heat td.l{{white-space:nowrap}}
table.heat td.l{{text-align:left}} table.heat td small{{display:block;font-size:.75rem;opacity:.85}}
.pill{{display:inline-block;padding:.05rem .5rem;border-radius:999px;color:#fff;font-size:.78rem;
font-weight:600;white-space:nowrap}}
.bar{{position:relative;height:10px;background:#eef1f4;border-radius:5px;min-width:120px;
overflow:hidden}}
.bar i{{position:absolute;top:0;bottom:0;left:0;background:var(--accent)}}
.bar i.b{{background:var(--warn)}} .bar b{{position:absolute;top:-2px;bottom:-2px;width:2px;
background:var(--ink)}}
.legend{{display:flex;flex-wrap:wrap;gap:.3rem .9rem;font-size:.8rem;color:var(--muted);
margin-top:.3rem}}
.legend i{{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:.3rem;
vertical-align:-1px}}
svg.chart{{width:100%;height:auto;display:block}}
svg.chart text{{font-family:{FONT};font-size:11px;fill:{MUTED}}}
form.filters{{display:flex;flex-wrap:wrap;gap:.6rem;align-items:end;margin:0 0 .8rem}}
form label{{display:flex;flex-direction:column;font-size:.78rem;color:var(--muted);gap:.15rem}}
input,select,textarea{{font:inherit;padding:.32rem .5rem;border:1px solid #cbd5e1;border-radius:6px;
background:#fff;color:var(--ink)}}
button.btn,a.btn{{font:inherit;background:var(--accent);color:#fff;border:0;border-radius:6px;
padding:.38rem .9rem;cursor:pointer;display:inline-block}}
button.danger{{background:var(--bad)}} a.btn.ghost,button.ghost{{background:#e2e8f0;color:var(--ink)}}
.pager{{display:flex;gap:.6rem;align-items:center;margin-top:.7rem;color:var(--muted)}}
pre.log{{background:#0f172a;color:#e2e8f0;padding:.8rem;border-radius:8px;max-height:420px;
overflow:auto;font-size:.8rem;white-space:pre-wrap}}
dl.kv{{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}}
dl.kv dt{{color:var(--muted)}} dl.kv dd{{margin:0}}
.alert{{border-left:4px solid var(--bad);background:#fef2f2;padding:.6rem .9rem;border-radius:6px;
margin:.6rem 0}}
.ok{{border-left:4px solid var(--ok);background:#f0fdf4;padding:.6rem .9rem;border-radius:6px;
margin:.6rem 0}}
.live{{font-size:.8rem;color:#94a3b8}} .live.stale{{color:#f87171}}
.login{{max-width:460px;margin:8vh auto}}
.login input{{width:100%;font-family:ui-monospace,monospace}}
code,.mono{{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em}}
details summary{{cursor:pointer;color:var(--accent);margin:.2rem 0 .6rem}}
footer{{color:var(--muted);font-size:.8rem;text-align:center;padding:1rem}}
@media print{{header.top{{position:static}} .card{{break-inside:avoid}}}}
"""
