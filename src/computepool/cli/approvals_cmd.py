"""``cpool approvals list / add / revoke``: residency approvals on record in a live server.

``add`` takes the same approvals YAML ``cpool simulate --approvals`` reads (so a what-if and
the live pool can run on one file), or one approval from options. Needs an admin token.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from computepool.catalog import yaml_lines
from computepool.cli.common import console, fail
from computepool.cli.conventions import (
    DEFAULT_URL,
    CpoolTyper,
    ServerAliasOpt,
    TokenOpt,
    UrlOpt,
    alias,
)
from computepool.cli.output import Col, Output, OutputOpt, emit

PATH = "/v1/residency/approvals"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, datetime | date) else v
        for k, v in row.items()
        if v is not None
    }


def approvals_from_file(file: Path) -> list[dict[str, Any]]:
    """The rows of an approvals YAML (``approvals: [...]`` or a list), as request bodies."""
    if not file.exists():
        raise fail(f"{file}: no such file")
    try:
        doc = yaml_lines.read(file).data
    except yaml_lines.YamlSyntaxError as exc:
        raise fail(str(exc)) from None
    rows = doc.get("approvals") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise fail(f"{file}: expected 'approvals:' with a list of approvals")
    return [_jsonable(r) for r in rows]


APPROVAL_COLUMNS = [
    Col("ID", lambda a: escape(a["id"]), key=True),
    Col("KIND", lambda a: escape(a["kind"]), key=True),
    Col("HANDLER", lambda a: escape(a["handler"]), key=True),
    Col("ORIGIN", lambda a: escape(a["origin"]), key=True, wide=True),
    Col("CLASS", lambda a: escape(a["data_class"]), key=True),
    Col("TO", lambda a: escape(",".join(a["to"])), key=True),
    Col("DATASETS", lambda a: escape(",".join(a["datasets"]) or "*"), wide=True),
    Col("VALID FROM", lambda a: a["valid_from"] or "-", key=True, wide=True),
    Col("EXPIRES", lambda a: a["expires"] or "never", key=True),
    Col("ACTIVE", lambda a: "yes" if a["active"] else "no", key=True),
    Col("REVOKED", lambda a: a.get("revoked_at") or "-", key=True, wide=True),
]


def register(app: typer.Typer) -> None:
    group = CpoolTyper(help="Residency approvals on record in a live server (admin).")
    app.add_typer(group, name="approvals")

    def client(url: str, server: str | None, token: str | None):
        from computepool.cli.jobs_cmd import Client

        return Client(alias(url, server, "--url", "--server", DEFAULT_URL), token)

    @group.command("list")
    def list_(
        output: OutputOpt = Output.table,
        url: UrlOpt = DEFAULT_URL,
        server: ServerAliasOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Approvals on record (revoked ones too)."""
        rows = client(url, server, token).call("GET", PATH).json()
        emit(output, APPROVAL_COLUMNS, rows, "Approvals on record")

    @group.command("add")
    def add(
        file: Annotated[
            Path | None,
            typer.Argument(help="Approvals YAML (the format of `cpool simulate --approvals`)."),
        ] = None,
        id: Annotated[str | None, typer.Option("--id", help="Approval id.")] = None,
        kind: Annotated[
            str | None, typer.Option("--kind", help="e.g. security_assessment (cpool rules).")
        ] = None,
        handler: Annotated[
            str, typer.Option("--handler", help="Data controller it covers (* for any).")
        ] = "*",
        origin: Annotated[
            str, typer.Option("--origin", help="Origin jurisdiction of the data (* for any).")
        ] = "*",
        data_class: Annotated[
            str, typer.Option("--data-class", help="Data class it covers (* for any).")
        ] = "*",
        to: Annotated[str, typer.Option("--to", help="Comma-separated jurisdictions.")] = "*",
        datasets: Annotated[str, typer.Option("--datasets", help="Comma-separated names.")] = "",
        valid_from: Annotated[str | None, typer.Option("--valid-from", help="ISO date.")] = None,
        expires: Annotated[str | None, typer.Option("--expires", help="ISO date.")] = None,
        note: Annotated[str, typer.Option("--note", help="Free text kept on record.")] = "",
        url: UrlOpt = DEFAULT_URL,
        server: ServerAliasOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Put approvals on record: from a YAML file, or one from the options."""
        if (file is None) == (id is None or kind is None):
            raise fail("give an approvals FILE, or --id and --kind (not both)")
        if file is not None:
            rows = approvals_from_file(file)
        else:
            rows = [
                _jsonable(
                    {"id": id, "kind": kind, "handler": handler, "origin": origin,
                     "data_class": data_class, "to": to.split(","),
                     "datasets": [d for d in datasets.split(",") if d],
                     "valid_from": valid_from, "expires": expires, "note": note}
                )
            ]  # fmt: skip
        c = client(url, server, token)
        for row in rows:
            a = c.call("POST", PATH, json=row).json()
            console.print(
                f"approval [bold]{a['id']}[/] on record ({a['kind']}, expires {a['expires'] or 'never'})"
            )

    @group.command("revoke")
    def revoke(
        approval_id: Annotated[str, typer.Argument(help="Approval id.")],
        url: UrlOpt = DEFAULT_URL,
        server: ServerAliasOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Revoke an approval now (it stays on record for the audit)."""
        a = client(url, server, token).call("DELETE", f"{PATH}/{approval_id}").json()
        console.print(f"approval [bold]{a['id']}[/] revoked at {a['revoked_at']}")
