"""The dashboard's routes: pages at ``/``, ``/jobs``, ``/jobs/{id}``, ``/tenants``, ``/serving``
(services), ``/usage``, ``/residency``; login with the API's bearer tokens (kept in an HttpOnly cookie); live
updates by polling the same URL with ``X-Fragment: 1`` (JSON: panel id -> HTML).

The same token auth as the API: a tenant's token sees only its own jobs and usage, the
admin's everything. A missing token goes to the login page; a bad one shows it with the
reason.
"""

from __future__ import annotations

import dataclasses
import json
import time
from importlib import resources
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from pydantic import ValidationError

from computepool.bounds import ID_MAX
from computepool.server import log_view as lv
from computepool.server import routes_jobs
from computepool.server.app import ApiError, AppContext
from computepool.server.schemas import JobSpec
from computepool.server.ui import pages_jobs, pages_pool, pages_services
from computepool.server.ui import queries as Q
from computepool.server.ui.pages_clusters import clusters_panel
from computepool.server.ui.scope import Viewer
from computepool.server.ui.views import Page, e, login_page, render_page

COOKIE = "cpool_token"
LOG_TAIL_BYTES = 64 * 1024
router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """No usable token: show the login page (with ``reason`` when a token was refused)."""

    def __init__(self, reason: str, next_path: str) -> None:
        super().__init__(reason)
        self.reason, self.next_path = reason, next_path


def _ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(COOKIE)


def viewer(request: Request) -> Viewer:
    """The principal behind the cookie (or a bearer header), as the API authenticates it."""
    token = _token(request)
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise LoginRequired("", nxt)
    p = _ctx(request).principal(token)
    if p is None:
        raise LoginRequired("That token is unknown or has been revoked.", nxt)
    return Viewer(p.token_id, p.is_admin, p.tenant_id, p.tenant)


Who = Annotated[Viewer, Depends(viewer)]


def install(app) -> None:
    """Mount the dashboard on ``app`` (routes and the login-page handler)."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("x-fragment"):
            return JSONResponse({"error": exc.reason or "log in"}, status_code=401)
        if not exc.reason:
            return RedirectResponse("/ui/login?next=" + quote(exc.next_path), status_code=303)
        resp = HTMLResponse(login_page(exc.reason, exc.next_path), status_code=401)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    app.include_router(router)


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


def _answer(request: Request, page: Page, who: Viewer) -> Response:
    if request.headers.get("x-fragment"):
        return JSONResponse({p.id: p.body for p in page.panels})
    return HTMLResponse(
        render_page(page, who.name, who.is_admin), headers={"Cache-Control": "no-store"}
    )


def _same_origin(request: Request) -> None:
    """Forms post with the cookie: refuse a post from another site, or from an opaque origin
    (``Origin: null``: a sandboxed frame, a ``data:`` page, some redirects)."""
    origin = request.headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.url.netloc):
        raise ApiError(403, "origin", "cross-site form posts are refused")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ApiError(403, "origin", "cross-site form posts are refused")


# ---- login -----------------------------------------------------------------------------
def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


@router.get("/ui/login", response_class=HTMLResponse)
def login_form(next: str = "/") -> HTMLResponse:  # noqa: A002 - the query parameter's name
    return HTMLResponse(login_page("", _safe_next(next)))


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


@router.post("/ui/login")
async def login(request: Request) -> Response:
    _same_origin(request)
    form = await _form(request)
    token, nxt = form.get("token", "").strip(), _safe_next(form.get("next", "/"))
    if not token:
        return HTMLResponse(login_page("Paste a token first.", nxt), status_code=401)
    if _ctx(request).principal(token) is None:
        return HTMLResponse(
            login_page("That token is unknown or has been revoked.", nxt), status_code=401
        )
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return resp


@router.post("/ui/logout")
def logout() -> Response:
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@router.get("/ui/static/app.js")
def app_js() -> Response:
    js = (resources.files("computepool.server.ui") / "static" / "app.js").read_text()
    return Response(js, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


# ---- pages -----------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def overview(request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        page = pages_pool.overview(s, ctx.service.pool, who, _params(request), time.time())
    sessions_of = getattr(ctx.service.cluster, "clusters", None)
    if sessions_of is not None:  # a federated pool: its clusters and their health first
        panel = clusters_panel(sessions_of(), who)
        page = dataclasses.replace(page, panels=(*page.panels[:1], panel, *page.panels[1:]))
    warning = getattr(ctx.service, "sandbox_warning", "")
    if warning:  # workers not sandboxed: every viewer should know
        alert = f"<div class='alert' role='alert' id='sandbox-warning'>{e(warning)}</div>"
        page = dataclasses.replace(page, intro=alert + page.intro)
    if getattr(ctx.service, "role", "leader") == "standby":  # several servers (docs/ha.md)
        note = (
            "<p class='muted' id='server-role'>This server is a standby: it takes requests and "
            "shows the store; another server schedules.</p>"
        )
        page = dataclasses.replace(page, intro=note + page.intro)
    return _answer(request, page, who)


@router.get("/jobs", response_class=HTMLResponse)
def jobs(request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        page = pages_jobs.jobs_page(
            s, ctx.service.pool, who, _params(request), ctx.service.over_budget, time.time(),
            ctx.service.pending_reason,
        )  # fmt: skip
    return _answer(request, page, who)


def _tail(paths: list[tuple[int, int, str]]) -> str:
    """The last bytes of each worker's log (prefixed when there are several)."""
    files = lv.log_files(paths, None, None)
    if len(files) == 1:
        size = lv.size_of(files[0].path)
        chunks = lv.read_range(files[0].path, max(size - LOG_TAIL_BYTES, 0), size)
    else:
        chunks = lv.tails(files, LOG_TAIL_BYTES)
    return b"".join(chunks)[-LOG_TAIL_BYTES:].decode(errors="replace")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(job_id: int, request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        row = s.get(Q.JobRow, job_id) if 1 <= job_id <= ctx.id_max else None
        if row is None or not who.owns(row.tenant_id):
            return HTMLResponse(
                render_page(
                    Page("Not found", "jobs", f"<h1>No job {job_id}</h1>", poll=0),
                    who.name,
                    who.is_admin,
                ),
                status_code=404,
            )
        job_ = {c.name: getattr(row, c.name) for c in row.__table__.columns}
        files = getattr(ctx.service.cluster, "log_files", lambda _j: [])(str(job_id))
        page = pages_jobs.job_page(
            s, job_, who, _tail(list(files)), ctx.service.over_budget, ctx.service.pool,
            time.time(), _params(request), ctx.service.pending_reason,
        )  # fmt: skip
    return _answer(request, page, who)


@router.get("/tenants", response_class=HTMLResponse)
def tenants(request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        page = pages_pool.tenants_page(s, ctx.service.pool, who, ctx.service.over_budget)
    return _answer(request, page, who)


@router.get("/usage", response_class=HTMLResponse)
def usage(request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        page = pages_pool.usage_page(s, ctx.service.pool, who, _params(request), time.time())
    return _answer(request, page, who)


@router.get("/serving", response_class=HTMLResponse)
def serving(request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        page = pages_services.services_page(s, ctx.gateway, who)
    return _answer(request, page, who)


@router.get("/usage.csv")
def usage_csv(request: Request, who: Who, w: str = "7d") -> Response:
    ctx = _ctx(request)
    now = time.time()
    span = pages_pool.WINDOWS.get(w if w in pages_pool.USAGE_WINDOWS else "7d")[0]
    with ctx.sessions() as s:
        rows = Q.usage(s, ctx.service.pool, who.scope, now - span, now)
    name = f"cpool-usage-{who.name}-{w}.csv"
    return PlainTextResponse(
        pages_pool.usage_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/residency", response_class=HTMLResponse)
def residency(request: Request, who: Who) -> Response:
    ctx = _ctx(request)
    with ctx.sessions() as s:
        page = pages_jobs.residency_page(s, who, _params(request), time.time())
    return _answer(request, page, who)


# ---- actions: submit and cancel from the UI, through the API's own handlers ------------
def _principal(request: Request):
    return _ctx(request).principal(_token(request) or "")


def _spec(form: dict[str, str]) -> JobSpec:
    body: dict[str, object] = {"command": form.get("command", "")}
    if form.get("name"):
        body["name"] = form["name"]
    for key in ("workers", "accelerators_per_worker"):
        if form.get(key):
            body[key] = form[key]
    if form.get("work"):
        body["work"] = form["work"]
    types = [t.strip() for t in form.get("accelerator_types", "").split(",") if t.strip()]
    if types:
        body["accelerator_types"] = types
    return JobSpec.model_validate(body)


@router.post("/ui/jobs")
async def submit(request: Request, who: Who) -> Response:
    _same_origin(request)
    form = await _form(request)
    try:
        spec = _spec(form)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "job"
        return RedirectResponse("/jobs?error=" + quote(f"{where}: {err['msg']}"), status_code=303)
    try:
        resp = await routes_jobs.submit(spec, request, _principal(request), None)
    except ApiError as exc:
        return RedirectResponse(
            "/jobs?error=" + quote(f"{exc.field}: {exc.reason}"), status_code=303
        )
    return RedirectResponse(f"/jobs/{json.loads(resp.body)['id']}", status_code=303)


@router.post("/ui/jobs/{job_id}/cancel")
def cancel(job_id: Annotated[int, Path(ge=1, le=ID_MAX)], request: Request, who: Who) -> Response:
    _same_origin(request)
    try:
        routes_jobs.cancel(job_id, request, _principal(request))
    except ApiError as exc:
        return RedirectResponse(f"/jobs/{job_id}?error=" + quote(exc.reason), status_code=303)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
