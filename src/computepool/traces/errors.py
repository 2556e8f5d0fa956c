"""TraceError: every reader's failure names the file, the line, the field and the reason."""

from __future__ import annotations


class TraceError(ValueError):
    """A trace or workload file (or generator spec) that cannot be read.

    The message has the form ``<file>:<line>: field <field>: <reason>`` (line and field omitted
    when they do not apply), so a user can jump straight to the offending cell.
    """

    def __init__(
        self,
        file: str,
        reason: str,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file)
        self.line = line
        self.field = field
        self.reason = reason
        where = self.file if line is None else f"{self.file}:{line}"
        what = "" if field is None else f"field {field!r}: "
        super().__init__(f"{where}: {what}{reason}")


def parse_float(
    text: str, file: str, line: int, field: str, *, minimum: float | None = None
) -> float:
    """``float(text)``, or a ``TraceError`` naming file, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise TraceError(file, f"{text.strip()!r} is not a number", line, field) from None
    if value != value:  # NaN
        raise TraceError(file, "is NaN", line, field)
    if minimum is not None and value < minimum:
        raise TraceError(file, f"{text.strip()} is below the minimum {minimum:g}", line, field)
    return value


def parse_int(text: str, file: str, line: int, field: str, *, minimum: int | None = None) -> int:
    """``int(text)`` (accepting ``'4.0'``), or a ``TraceError`` naming file, line and field."""
    value = parse_float(text, file, line, field)
    if value != int(value):
        raise TraceError(file, f"{text.strip()!r} is not a whole number", line, field)
    if minimum is not None and value < minimum:
        raise TraceError(file, f"{text.strip()} is below the minimum {minimum}", line, field)
    return int(value)
