"""``GET /v1/jobs/{id}/logs``: a job's output with bounded memory and a bounded answer.

Without ``follow``: a byte window of one log (``offset`` and ``limit``, or ``tail_bytes``;
by default its last ``LOG_RESPONSE_MAX_BYTES``), or, for a job with several logs (workers x
attempts), each one's tail in prefixed whole lines; never more than the cap. Headers say
where the window lies (``X-Log-Offset``, ``X-Log-Next-Offset``, ``X-Log-Size``), so a client
pages through a long log. With ``follow``: everything from the start (or from ``offset`` /
the last ``tail_bytes``) as it is written, until the job ends, the client goes away or the
token is revoked. Files are read ``LOG_CHUNK_BYTES`` at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from computepool.bounds import ID_MAX, LOG_RESPONSE_MAX_BYTES
from computepool.server import log_view as lv
from computepool.server.app import ApiError, AppContext
from computepool.server.db import FINAL
from computepool.server.routes_jobs import ERRORS, Caller, JobId, ctx_of, visible_or_404

router = APIRouter(prefix="/v1", tags=["jobs"], responses=ERRORS)
MEDIA = "text/plain; charset=utf-8"
POLL_SECONDS = 0.3
Ordinal = Annotated[int | None, Query(ge=0, le=2**31 - 1)]
Bytes = Annotated[int | None, Query(ge=1, le=LOG_RESPONSE_MAX_BYTES)]


def _files(ctx: AppContext, job_id: int, attempt: int | None, rank: int | None):
    found = getattr(ctx.service.cluster, "log_files", lambda _k: [])(str(job_id))
    return lv.log_files(found, attempt, rank)


def _one_window(
    f: lv.LogFile | None, offset: int | None, limit: int | None, tail: int | None
) -> tuple[Iterator[bytes], dict[str, str]]:
    size = 0 if f is None else lv.size_of(f.path)
    start, end = lv.window(size, offset, limit, tail)
    body = iter(()) if f is None else lv.read_range(f.path, start, end)
    return body, {
        "X-Log-Size": str(size),
        "X-Log-Offset": str(start),
        "X-Log-Next-Offset": str(end),
    }


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
async def logs(
    job_id: JobId,
    request: Request,
    caller: Caller,
    follow: bool = False,
    attempt: Ordinal = None,
    rank: Ordinal = None,
    offset: Annotated[int | None, Query(ge=0, le=ID_MAX)] = None,
    limit: Bytes = None,
    tail_bytes: Bytes = None,
) -> Response:
    """The job's output (stdout and stderr of every worker and attempt), at most
    ``LOG_RESPONSE_MAX_BYTES`` per answer unless ``follow`` streams it as it grows."""
    ctx = ctx_of(request)
    visible_or_404(ctx, caller, job_id)
    if tail_bytes is not None and (offset is not None or limit is not None):
        raise ApiError(422, "tail_bytes", "give tail_bytes, or offset and limit, not both")
    if limit is not None and offset is None:
        offset = 0
    files = _files(ctx, job_id, attempt, rank)
    if offset is not None and len(files) > 1:
        raise ApiError(
            422,
            "offset",
            f"this job has {len(files)} logs (workers x attempts); choose one with attempt "
            "and rank",
        )
    if follow:
        token = request.headers.get("authorization", "")[7:].strip()
        stream = _follow(ctx, request, caller, token, job_id, attempt, rank, offset, tail_bytes)
        return StreamingResponse(stream, media_type=MEDIA)
    if len(files) > 1:
        body, headers = lv.tails(files, tail_bytes), {"X-Log-Files": str(len(files))}
    else:
        body, headers = _one_window(files[0] if files else None, offset, limit, tail_bytes)
    return StreamingResponse(iterate_in_threadpool(body), media_type=MEDIA, headers=headers)


async def _follow(
    ctx: AppContext,
    request: Request,
    caller,
    token: str,
    job_id: int,
    attempt: int | None,
    rank: int | None,
    offset: int | None,
    tail: int | None,
) -> AsyncIterator[bytes]:
    files = _files(ctx, job_id, attempt, rank)
    start = {f.path: offset for f in files} if offset is not None else lv.start_offsets(files, tail)
    follower = lv.Follower(start, prefixed=len(files) > 1)
    while True:
        files = _files(ctx, job_id, attempt, rank)
        follower.prefixed = follower.prefixed or len(files) > 1
        async for chunk in iterate_in_threadpool(follower.new_bytes(files)):
            yield chunk
        row = visible_or_404(ctx, caller, job_id)
        if row.status in FINAL:
            files = _files(ctx, job_id, attempt, rank)
            async for chunk in iterate_in_threadpool(follower.finish(files)):
                yield chunk
            return
        if ctx.principal(token) is None or await request.is_disconnected():
            return  # the token was revoked, or the client went away
        await asyncio.sleep(POLL_SECONDS)
