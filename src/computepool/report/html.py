"""Shared HTML building blocks: page shell, cards, tables and embedded matplotlib figures.

The look (``report/theme.py``) is the live dashboard's, so a report of a simulation or a plan
reads like the live pool. Every page is self-contained: CSS inline, figures as data URLs.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from computepool.report.theme import CSS, GRID, INK, LINE, MUTED, PALETTE, heat, heat_ink  # noqa: E402

#: Kept for callers that inline it; the same CSS the dashboard serves.
STYLE = CSS

__all__ = [
    "PALETTE", "STYLE", "card", "figure_png", "heat_grid", "kpis", "page", "section", "shell",
    "table",
]  # fmt: skip

_RC = {
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": LINE,
    "axes.labelcolor": MUTED,
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "grid.color": GRID,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
}


def figure_png(fig: Figure) -> str:
    """A matplotlib figure as an inline PNG, restyled to the dashboard's axes and colours."""
    with matplotlib.rc_context(_RC):
        for ax in fig.axes:
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            for side in ("left", "bottom"):
                ax.spines[side].set_color(LINE)
            ax.tick_params(colors=MUTED)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" style="max-width:100%" src="data:image/png;base64,{data}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kpis(items: Iterable[tuple[str, str, str]]) -> str:
    """Key figures as tiles: (label, value, detail)."""
    tiles = "".join(
        f"<div class='kpi'><div class='l'>{html.escape(label)}</div>"
        f"<div class='v'>{html.escape(value)}</div><div class='d'>{html.escape(detail)}</div></div>"
        for label, value, detail in items
    )
    return f"<div class='kpis'>{tiles}</div>"


def heat_grid(cells: Mapping[str, tuple[float, str]], note: str = "") -> str:
    """Utilisation as a region x accelerator-type grid: flavor ``region/accel`` -> (busy
    fraction, small label such as "11/36"); a missing flavor is a blank cell."""
    keys = [k.partition("/") for k in cells]
    regions = sorted({r for r, _, _ in keys})
    accels = sorted({a for _, _, a in keys})
    head = "".join(f"<th>{html.escape(a)}</th>" for a in accels)
    rows = []
    for r in regions:
        tds = []
        for a in accels:
            hit = cells.get(f"{r}/{a}")
            if hit is None:
                tds.append("<td></td>")
                continue
            u, label = hit
            tds.append(
                f"<td style='background:{heat(u)};color:{heat_ink(u)}' "
                f"title='{html.escape(f'{r}/{a}')}: {u:.1%}'>{u:.0%}"
                f"<small>{html.escape(label)}</small></td>"
            )
        rows.append(f"<tr><td class='l'><b>{html.escape(r)}</b></td>{''.join(tds)}</tr>")
    foot = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return (
        f"<table class='heat'><thead><tr><th class='l'>region</th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{foot}"
    )


def card(title: str, body: str, ident: str = "") -> str:
    """A titled card; ``body`` is trusted markup. ``ident`` makes it a live panel."""
    attr = f" id='{html.escape(ident)}' data-live" if ident else ""
    head = f"<h2>{html.escape(title)}</h2>" if title else ""
    return f"<section class='card'{attr}>{head}<div class='body'>{body}</div></section>"


def section(title: str, body: str) -> str:
    return card(title, body)


def shell(title: str, body: str, head: str = "", header: str = "") -> str:
    """The page around ``body``: CSS inline, a top bar (``header``: nav markup)."""
    top = header or (
        "<header class='top'><span class='brand'>compute<span>pool</span></span>"
        "<span class='muted'>report</span></header>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>{head}</head>"
        f"<body>{top}<main>{body}</main></body></html>"
    )


def page(title: str, subtitle: str, sections: Iterable[str], generator: str = "") -> str:
    """A self-contained report: heading, subtitle, then each section as a card.
    ``generator`` (e.g. ``cpool report sim.json``) is recorded in a ``<meta>`` tag, so a
    command can tell its own earlier output from another's before replacing a file."""
    body = f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(subtitle)}</p>" + "".join(
        sections
    )
    head = f"<meta name='generator' content='{html.escape(generator)}'>" if generator else ""
    return shell(title, body, head)


def generator_of(text: str) -> str | None:
    """The ``generator`` a page was written with (see ``page``), or None."""
    import re

    end = text.find("</head>")
    m = re.search(r"<meta name='generator' content='([^']*)'>", text[: max(end, 0)])
    return html.unescape(m.group(1)) if m else None
