"""One job contract, one set of names: the old spellings of job fields and their new names.

Workload files once spelled three job fields differently from the API. Both spellings are
read; the old ones are deprecated: a file (or a submitted job) that uses them gets one warning
naming the file, each old field and its new name (``deprecation``), logged to the
``computepool.deprecation`` logger (the CLI shows it on stderr) or, through the API, returned
in the submission's ``warnings``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

#: Old name -> the contract's name (the API's, the workload file's from now on).
DEPRECATED: dict[str, str] = {
    "accel_per_worker": "accelerators_per_worker",
    "accelerators": "accelerator_types",
    "total_steps": "work",
}

log = logging.getLogger("computepool.deprecation")


def old_names(records: Iterable[object]) -> list[str]:
    """The deprecated field names used by any of ``records`` (mappings), in the map's order."""
    used: set[str] = set()
    for r in records:
        if isinstance(r, dict):
            used.update(k for k in DEPRECATED if k in r)
    return [k for k in DEPRECATED if k in used]


def deprecation(where: str, names: Iterable[str]) -> str:
    """The message for ``where`` (a file, "job file") using the old ``names``."""
    fields = ", ".join(f"'{n}' (use '{DEPRECATED[n]}')" for n in names)
    return f"{where}: deprecated field name(s) {fields}; the old names will be removed"


def warn_old_names(where: str, records: Iterable[object]) -> str | None:
    """Log one deprecation warning for ``where`` if its records use old names; the message."""
    names = old_names(records)
    if not names:
        return None
    msg = deprecation(where, names)
    log.warning(msg)
    return msg
