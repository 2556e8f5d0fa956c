"""Small HTML pieces of the dashboard: formatting, status pills, tables, pager, page shell."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from computepool.report.html import shell
from computepool.report.theme import STATUS_COLOURS

NAV = (
    ("overview", "/", "Overview"),
    ("jobs", "/jobs", "Jobs"),
    ("tenants", "/tenants", "Tenants"),
    ("services", "/serving", "Services"),
    ("usage", "/usage", "Usage & cost"),
    ("residency", "/residency", "Residency audit"),
)


def e(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


@dataclass(frozen=True)
class Panel:
    """A card whose body the page refreshes in place (``id`` names it in the JSON)."""

    id: str
    title: str
    body: str
    half: bool = False


@dataclass(frozen=True)
class Page:
    title: str
    nav: str
    intro: str = ""
    panels: Sequence[Panel] = field(default_factory=tuple)
    #: Seconds between live refreshes; 0: none.
    poll: float = 2.0


def when(t: float | None, now: float | None = None) -> str:
    """UTC time: ``HH:MM:SS`` today, ``MM-DD HH:MM`` before."""
    if t is None:
        return "–"
    d = datetime.fromtimestamp(t, UTC)
    ref = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    return d.strftime("%H:%M:%S") if d.date() == ref.date() else d.strftime("%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def usd(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"${v / 1e6:,.2f}M"
    if a >= 1e4:
        return f"${v / 1e3:,.1f}k"
    return f"${v:,.2f}"


def num(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}"


def pill(status: str) -> str:
    c = STATUS_COLOURS.get(status, "#64748b")
    return f"<span class='pill' style='background:{c}'>{e(status)}</span>"


def bar(used: float, limit: float, nominal: float | None = None) -> str:
    """A usage bar: ``used`` of ``limit``, the part above ``nominal`` (borrowed) in amber,
    a tick at the nominal quota."""
    top = max(limit, used, nominal or 0.0, 1e-9)
    own = min(used, nominal) if nominal is not None else used
    parts = [f"<i style='width:{100 * own / top:.1f}%'></i>"]
    if nominal is not None and used > nominal:
        parts.append(
            f"<i class='b' style='left:{100 * nominal / top:.1f}%;"
            f"width:{100 * (used - nominal) / top:.1f}%'></i>"
        )
    if nominal is not None and 0 < nominal < top:
        parts.append(f"<b style='left:{100 * nominal / top:.1f}%'></b>")
    return f"<div class='bar'>{''.join(parts)}</div>"


def rows_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1, text: int = 0
) -> str:
    """A table whose cells are trusted markup; the first ``left`` columns align left, and so
    do the last ``text`` ones (prose such as reasons)."""
    n = len(headers)

    def cls(i: int) -> str:
        return " class='l'" if i < left else " class='t'" if i >= n - text else ""

    head = "".join(
        f"<th{' class=l' if i < left or i >= n - text else ''}>{e(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    if not body:
        body = f"<tr><td class='l muted' colspan='{len(headers)}'>nothing here yet</td></tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: Pages of a listing a URL may ask for (beyond: the last one is empty anyway).
MAX_PAGE = 1_000_000


def page_of(params: Mapping[str, str]) -> int:
    """The ``page`` parameter as 1..MAX_PAGE (anything else: 1)."""
    text = str(params.get("page", "") or "")
    if not (text.isascii() and text.isdigit() and len(text) <= 7):
        return 1
    return min(max(int(text), 1), MAX_PAGE)


def link(path: str, params: dict[str, object], **change: object) -> str:
    merged = {**params, **change}
    q = urlencode({k: v for k, v in merged.items() if v not in (None, "", 0)}, doseq=True)
    return path + ("?" + q if q else "")


def pager(path: str, params: dict[str, object], page: int, per: int, total: int) -> str:
    last = max((total - 1) // per + 1, 1)
    lo, hi = (page - 1) * per + 1 if total else 0, min(page * per, total)
    prev = (
        f"<a class='btn ghost' href='{e(link(path, params, page=page - 1))}'>← newer</a>"
        if page > 1
        else ""
    )
    nxt = (
        f"<a class='btn ghost' href='{e(link(path, params, page=page + 1))}'>older →</a>"
        if page < last
        else ""
    )
    return f"<div class='pager'>{prev}<span>{lo:,}–{hi:,} of {total:,}</span>{nxt}</div>"


def header(nav: str, who: str, is_admin: bool) -> str:
    links = "".join(
        f"<a href='{href}' class='{'on' if key == nav else ''}'>{e(label)}</a>"
        for key, href, label in NAV
    )
    role = "admin" if is_admin else "tenant"
    return (
        "<header class='top'><a class='brand' href='/'>compute<span>pool</span></a>"
        f"<nav>{links}</nav><div class='who'><span class='live' id='live'>live</span>"
        f"<span>{role} <b>{e(who)}</b></span>"
        "<form method='post' action='/ui/logout' style='margin:0'>"
        "<button type='submit'>Log out</button></form></div></header>"
    )


def render_panel(p: Panel) -> str:
    if not p.title:  # key figures: no card around them
        return f"<section id='{e(p.id)}' data-live><div class='body'>{p.body}</div></section>"
    title = f"<h2>{e(p.title)}</h2>" if p.title else ""
    return f"<section class='card' id='{e(p.id)}' data-live>{title}<div class='body'>{p.body}</div></section>"


def render_page(page: Page, who: str, is_admin: bool) -> str:
    """The whole HTML document: panels in order, consecutive half panels side by side."""
    out, pending = [page.intro], []
    for p in [*page.panels, None]:
        if p is not None and p.half:
            pending.append(render_panel(p))
            continue
        if pending:
            out.append(f"<div class='grid' style='margin-bottom:1rem'>{''.join(pending)}</div>")
            pending = []
        if p is not None:
            out.append(render_panel(p))
    head = "<script src='/ui/static/app.js' defer></script>"
    body = "".join(out)
    doc = shell(
        f"{page.title} · computepool", body, head=head, header=header(page.nav, who, is_admin)
    )
    return doc.replace("<body>", f"<body data-poll='{page.poll:g}'>", 1)


def login_page(reason: str = "", next_path: str = "/") -> str:
    alert = f"<div class='alert' role='alert' id='login-error'>{e(reason)}</div>" if reason else ""
    body = (
        "<div class='login card'><h1>compute<span style='color:#2563eb'>pool</span></h1>"
        "<p class='sub'>Paste the bearer token your operator gave you (<code>cpool_…</code>). "
        "A tenant's token shows its own jobs and usage; an admin token shows the whole pool.</p>"
        f"{alert}<form method='post' action='/ui/login'>"
        f"<input type='hidden' name='next' value='{e(next_path)}'>"
        "<label>Token<input name='token' id='token' type='password' autocomplete='off' "
        "required autofocus></label><p><button class='btn' type='submit'>Log in</button></p>"
        "</form><p class='note'>The token is kept in an HttpOnly cookie for this browser "
        "session only.</p></div>"
    )
    return shell("Log in · computepool", body)
