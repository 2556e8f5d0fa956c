"""The job client: ``cpool submit / jobs / job / logs / cancel / usage`` against ``cpool serve``.

The server is ``--url`` or ``$CPOOL_URL`` (default http://127.0.0.1:8000); the tenant's token
is ``--token`` or ``$CPOOL_TOKEN``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from computepool.bounds import JOB_FILE_MAX_BYTES
from computepool.catalog import yaml_lines
from computepool.cli.common import console, fail, warn
from computepool.cli.conventions import DEFAULT_URL, TokenOpt, UrlOpt
from computepool.cli.output import Output, OutputOpt

JobIdArg = Annotated[int, typer.Argument(help="Job id (see `cpool jobs`).")]


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        if not token:
            raise fail("no token: pass --token or set CPOOL_TOKEN (see `cpool admin token create`)")
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise fail(f"cannot reach {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            try:
                doc = r.json()
                errs = doc.get("errors") or [{"field": "", "reason": doc.get("error", r.text)}]
                msg = "; ".join(
                    f"{e['field']}: {e['reason']}" if e["field"] else e["reason"] for e in errs
                )
            except ValueError:
                msg = r.text
            raise fail(f"{r.status_code}: {msg}")
        return r


def _parse(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone()


def _when(text: str | None) -> str:
    if not text:
        return "-"
    t = _parse(text)
    today = t.date() == datetime.now().astimezone().date()
    return t.strftime("%H:%M:%S" if today else "%m-%d %H:%M")


def _age(text: str | None, now: datetime | None = None) -> str:
    """kubectl's AGE: 45s, 12m, 5h, 3d."""
    if not text:
        return "-"
    s = max(((now or datetime.now().astimezone()) - _parse(text)).total_seconds(), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s"


def _status(s: str) -> str:
    from computepool.cli.jobs_view import status_markup

    return status_markup(s)


def read_job_file(file: Path) -> dict[str, Any]:
    """A job file's fields, refused before anything is built from it when it is over
    ``JOB_FILE_MAX_BYTES`` or uses YAML anchors or aliases (a few lines of aliases can
    expand to gigabytes: the "billion laughs")."""
    try:
        with file.open("rb") as f:
            raw = f.read(JOB_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise fail(f"{file}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > JOB_FILE_MAX_BYTES:
        raise fail(f"{file}: over {JOB_FILE_MAX_BYTES} bytes; a job file is at most 1 MiB")
    try:
        text = raw.decode("utf-8")
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise fail(
                    f"{file}: line {line}: YAML anchors and aliases (&name, *name) are not "
                    "accepted in job files; write the values out"
                )
        doc = yaml_lines.load(text, str(file)).data
    except UnicodeDecodeError:
        raise fail(f"{file}: not UTF-8 text") from None
    except yaml_lines.YamlSyntaxError as exc:
        raise fail(str(exc)) from None
    except yaml.YAMLError:  # the anchor scan met a syntax error: say it with file and line
        try:
            yaml_lines.load(text, str(file))
        except yaml_lines.YamlSyntaxError as exc:
            raise fail(str(exc)) from None
        raise
    if not isinstance(doc, dict):
        raise fail(f"{file}: expected a mapping of job fields (command, workers, ...)")
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise fail(f"{file}: a value cannot be sent as JSON ({exc}); quote it") from None
    return doc


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        file: Annotated[Path, typer.Argument(help="Job YAML (or JSON): command, workers, ...")],
        key: Annotated[
            str | None, typer.Option("--key", help="Idempotency key: resubmitting is safe.")
        ] = None,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """Submit a job."""
        if not file.exists():
            raise fail(f"{file}: no such file")
        doc = read_job_file(file)
        headers = {"Idempotency-Key": key} if key else {}
        r = Client(url, token).call("POST", "/v1/jobs", json=doc, headers=headers)
        j = r.json()
        for w in j.get("warnings") or []:  # deprecations, e.g. old field names
            warn(w.replace("job file", str(file), 1))
        again = " (already submitted with this key)" if r.status_code == 200 else ""
        console.print(f"job [bold]{j['id']}[/] {_status(j['status'])}{again}")

    @app.command()
    def jobs(
        status: Annotated[
            list[str] | None, typer.Option("--status", help="Filter (repeatable).")
        ] = None,
        tenant: Annotated[str | None, typer.Option("--tenant", help="Admin: one tenant's.")] = None,
        limit: Annotated[int, typer.Option("--limit", help="At most this many jobs.")] = 50,
        output: OutputOpt = Output.table,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """List jobs, newest first."""
        from computepool.cli.jobs_view import print_jobs

        params: dict[str, Any] = {"limit": limit, "status": status or []}
        if tenant:
            params["tenant"] = tenant
        rows = Client(url, token).call("GET", "/v1/jobs", params=params).json()["jobs"]
        print_jobs(rows, output, _when, _age)

    @app.command()
    def job(
        job_id: JobIdArg,
        output: OutputOpt = Output.table,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """One job: status, events, placements."""
        from computepool.cli.jobs_view import print_job

        print_job(Client(url, token).call("GET", f"/v1/jobs/{job_id}").json(), output, _when)

    @app.command()
    def logs(
        job_id: JobIdArg,
        follow: Annotated[
            bool,
            typer.Option("--follow/--no-follow", "-f", help="Stream until the job ends."),
        ] = False,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """A job's output (every worker and attempt)."""
        c = Client(url, token, timeout=None if follow else 30.0)
        if not follow:
            r = c.call("GET", f"/v1/jobs/{job_id}/logs")
            sys.stdout.write(r.text)
            start = int(r.headers.get("x-log-offset", "0") or 0)
            if start > 0:
                sys.stderr.write(
                    f"(the last {len(r.content):,} of {r.headers.get('x-log-size')} bytes; "
                    "--follow streams the whole log)\n"
                )
            return
        try:
            with c.http.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": True}) as r:
                if r.status_code >= 400:
                    r.read()
                    c.call("GET", f"/v1/jobs/{job_id}")  # the same error, formatted
                for chunk in r.iter_text():
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
        except httpx.HTTPError as exc:
            raise fail(f"log stream ended: {exc}") from None

    @app.command()
    def cancel(job_id: JobIdArg, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
        """Cancel a job (SIGTERM, then SIGKILL after the server's grace period)."""
        Client(url, token).call("POST", f"/v1/jobs/{job_id}/cancel")
        console.print(f"job {job_id}: cancel requested")

    @app.command()
    def usage(
        tenant: Annotated[str | None, typer.Option("--tenant", help="Admin: one tenant.")] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="ISO time or duration back: 90m, 24h, 7d.")
        ] = None,
        tokens: Annotated[
            bool,
            typer.Option(
                "--tokens/--no-tokens",
                help="Tokens through the OpenAI-compatible gateway per tenant, service and "
                "model, with their cost, instead of accelerator use.",
            ),
        ] = False,
        output: OutputOpt = Output.table,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
    ) -> None:
        """Accelerator-hours, energy, cost and carbon per tenant and flavor (--tokens: gateway
        tokens and their cost per tenant, service and model)."""
        from computepool.cli.jobs_view import print_usage

        params = {k: v for k, v in (("tenant", tenant), ("since", since)) if v}
        doc = Client(url, token).call("GET", "/v1/usage", params=params).json()
        print_usage(doc, output, _when, tokens=tokens)
