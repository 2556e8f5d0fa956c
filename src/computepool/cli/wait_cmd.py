"""``cpool wait``: block until the server answers, or until jobs run or end (for scripts).

With no job ids it polls ``/healthz`` (no token needed); with ids it polls each job until it is
running (``--for running``) or has ended (``--for done``). Exit status 0 when the condition
holds, 1 on timeout or when a job can no longer meet it (failed, cancelled, rejected).
"""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer

from computepool.cli.common import console, fail
from computepool.cli.conventions import DEFAULT_URL, TokenOpt, UrlOpt
from computepool.cli.jobs_cmd import Client

ENDED = frozenset({"succeeded", "failed", "cancelled", "rejected"})
CONDITIONS = ("running", "done")
MAX_TIMEOUT_S = 24 * 3600.0


def reached(status: str, condition: str) -> bool | None:
    """True when ``status`` meets ``condition``, False when it never will, None: not yet."""
    if condition == "done":
        return True if status in ENDED else None
    if status in ("running", "succeeded"):
        return True
    return False if status in ENDED else None


def _server_up(url: str, deadline: float, interval: float) -> bool:
    with httpx.Client(base_url=url.rstrip("/"), timeout=5.0) as http:
        while True:
            try:
                if http.get("/healthz").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


def register(app: typer.Typer) -> None:
    @app.command()
    def wait(
        job_ids: Annotated[
            list[int] | None, typer.Argument(help="Jobs to wait for; none: wait for the server.")
        ] = None,
        until: Annotated[
            str, typer.Option("--for", help="running: until each job runs; done: until it ends.")
        ] = "running",
        timeout: Annotated[
            float, typer.Option("--timeout", help="Give up after S seconds.")
        ] = 60.0,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """Wait until the server answers, or until jobs are running (or done)."""
        if until not in CONDITIONS:
            raise fail(f"--for {until!r}: one of {', '.join(CONDITIONS)}")
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise fail(f"--timeout {timeout:g}: must be within (0, {MAX_TIMEOUT_S:g}] seconds")
        deadline = time.monotonic() + timeout
        if not job_ids:
            if not _server_up(url, deadline, 0.2):
                raise fail(f"no answer from {url} within {timeout:g} s", code=1)
            console.print(f"server up at {url}", highlight=False)
            return
        client = Client(url, token)
        for job_id in job_ids:
            while True:
                status = client.call("GET", f"/v1/jobs/{job_id}").json()["status"]
                ok = reached(status, until)
                if ok is not None:
                    break
                if time.monotonic() >= deadline:
                    raise fail(f"job {job_id} is still {status} after {timeout:g} s", code=1)
                time.sleep(0.2)
            if not ok or (until == "done" and status != "succeeded"):
                raise fail(f"job {job_id} {status}", code=1)
            console.print(f"job {job_id} {status}", highlight=False)
