"""``-o table|wide|json`` for listing commands (kubectl's convention).

``table`` (the default) fits the terminal (80 columns and up): key columns (ids, names,
statuses, flavors) are never cut; only free text (reasons, details, lists) is shortened with
an ellipsis, and some columns are left to ``wide``. ``wide`` shows every column in full
(lines may run past the terminal). ``json`` prints the data itself, for scripts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from computepool.cli.common import console


class Output(StrEnum):
    table = "table"
    wide = "wide"
    json = "json"


OutputOpt = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        help="table (fits 80 columns), wide (every column, in full) or json (for scripts).",
        case_sensitive=False,
    ),
]
#: ``--json`` (print JSON) is the old spelling of ``-o json`` on ``audit`` and ``route``.
JsonFlagAliasOpt = Annotated[
    bool, typer.Option("--json/--no-json", hidden=True, help="Old spelling of -o json.")
]

#: Columns between cells (padding) and the narrowest a free-text column is squeezed to.
GAP = 2
MIN_FREE = 8


@dataclass(frozen=True)
class Col:
    """One column: ``cell`` turns a row into the text shown (Rich markup allowed).

    ``key`` columns are never cut; the other columns are free text, shortened with an ellipsis
    when the table would not fit; ``wide`` columns show only with ``-o wide``; ``optional``
    columns leave ``table`` (last first) when the free text would get under its ``min_free``."""

    header: str
    cell: Callable[[Any], str]
    key: bool = False
    wide: bool = False
    right: bool = False
    optional: bool = False
    #: Free text that wraps onto more lines in ``table`` instead of being shortened.
    wrap: bool = False
    #: The narrowest this free-text column is squeezed to before optional columns leave.
    min_free: int = MIN_FREE


def _width(markup: str) -> int:
    return max((Text.from_markup(line).cell_len for line in markup.split("\n")), default=0)


def build_table(
    cols: Sequence[Col], rows: Sequence[Any], wide: bool, width: int, title: str | None = None
) -> Table:
    """A borderless table of ``rows``; in ``table`` mode it fits ``width`` columns unless the
    key columns alone do not."""
    shown = [c for c in cols if wide or not c.wide]
    cells = [[c.cell(r) for c in shown] for r in rows]
    natural = [
        max([_width(c.header), *(_width(row[i]) for row in cells)]) for i, c in enumerate(shown)
    ]
    if not wide:
        keep = _fitting(shown, natural, width)
        shown = [c for c, k in zip(shown, keep, strict=True) if k]
        cells = [[x for x, k in zip(row, keep, strict=True) if k] for row in cells]
        natural = [n for n, k in zip(natural, keep, strict=True) if k]
    caps: list[int | None] = [None] * len(shown)
    if not wide:
        free = [i for i, c in enumerate(shown) if not c.key]
        fixed = sum(w for i, w in enumerate(natural) if i not in free)
        room = width - fixed - GAP * (len(shown) - 1)
        # give the narrowest free columns their full width first, share the rest evenly
        for n, i in enumerate(sorted(free, key=lambda i: natural[i])):
            share = max(room // (len(free) - n), shown[i].min_free)
            caps[i] = min(natural[i], share)
            room -= caps[i]
    t = Table(
        title=title,
        box=None,
        pad_edge=False,
        padding=(0, GAP // 2),
        header_style="bold",
        title_style="bold",
        expand=False,
    )
    for c, n, cap in zip(shown, natural, caps, strict=True):
        t.add_column(
            c.header,
            justify="right" if c.right else "left",
            no_wrap=not (c.wrap and cap is not None),
            overflow="fold" if c.wrap else "ellipsis",
            min_width=n if cap is None else min(cap, n),
            max_width=n if cap is None else cap,
        )
    for row in cells:
        t.add_row(*row)
    return t


def _fitting(cols: Sequence[Col], natural: Sequence[int], width: int) -> list[bool]:
    """Which columns ``table`` keeps: all, less optional ones (the last first) while the key
    columns leave the free text under its ``min_free``."""
    keep = [True] * len(cols)

    def short() -> bool:
        n = sum(keep)
        free = sum(1 for c, k in zip(cols, keep, strict=True) if k and not c.key)
        fixed = sum(w for c, w, k in zip(cols, natural, keep, strict=True) if k and c.key)
        need_free = sum(
            min(w, c.min_free)
            for c, w, k in zip(cols, natural, keep, strict=True)
            if k and not c.key
        )
        return (
            free > 0
            and fixed + need_free + GAP * (n - 1) > width
            or (free == 0 and fixed + GAP * (n - 1) > width)
        )

    for i in reversed(range(len(cols))):
        if not short():
            break
        if cols[i].optional:
            keep[i] = False
    return keep


def print_table(t: Table, wide: bool = False) -> None:
    """Print ``t`` in full: when it is wider than the terminal (``wide``, or key columns that
    alone do not fit), lines run past the edge rather than Rich dropping or cutting columns."""
    from rich.console import Console
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update(width=100_000), t).maximum
    if need <= console.width:
        console.print(t)
        return
    out = Console(
        file=sys.stdout,
        width=need,
        force_terminal=console.is_terminal,
        color_system=console.color_system,
        highlight=False,
    )
    out.print(t, crop=False)


def emit(
    fmt: Output,
    cols: Sequence[Col],
    rows: Sequence[Any],
    title: str | None = None,
    data: Any = None,
) -> None:
    """Print ``rows`` as ``fmt``: a table of ``cols``, or ``data`` (default: ``rows``) as JSON."""
    if fmt == Output.json:
        print_json(rows if data is None else data)
        return
    wide = fmt == Output.wide
    print_table(build_table(cols, rows, wide, console.width, title), wide)


def print_json(data: Any) -> None:
    """One JSON document on stdout, never wrapped or highlighted."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_json_lines(records: Sequence[Any]) -> None:
    """One JSON object per line (the format of audit files)."""
    sys.stdout.write("".join(json.dumps(r, default=str) + "\n" for r in records))
    sys.stdout.flush()


def output_of(fmt: Output, json_flag: bool) -> Output:
    """``-o`` with the old ``--json`` flag folded in."""
    return Output.json if json_flag else fmt
