"""A CSV row iterator whose errors name the file, line and column."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from computepool.traces.errors import TraceError


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(str(p), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(str(p), f"cannot read: {exc}") from None


def csv_rows(path: str | Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for each non-blank data row; the header must hold ``required``."""
    file = str(path)
    reader = csv.reader(read_text(path).splitlines())
    header: list[str] | None = None
    for cells in reader:
        line = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            for name in required:
                if name not in header:
                    raise TraceError(
                        file, f"header lacks column {name!r} (has {', '.join(header)})", line, name
                    )
            continue
        if len(cells) != len(header):
            raise TraceError(
                file, f"has {len(cells)} columns; the header has {len(header)}", line, "columns"
            )
        yield line, dict(zip(header, cells, strict=True))
    if header is None:
        raise TraceError(file, "is empty (no header line)", 1, "columns")
