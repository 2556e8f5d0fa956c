"""Bounds on every tenant input: ids, string sizes, list and map sizes, finite numbers.

Every request body of the REST API is a ``BoundedModel``: unknown fields, NaN and Infinity,
NUL characters and unpaired surrogates are refused in every field (PostgreSQL cannot store
NUL in text, and neither store can encode a lone surrogate), and any string without a tighter
cap is at most ``STR_MAX`` characters. The caps below are listed in docs/security.md.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

#: Ids of stored rows (jobs, tokens, audit records): 1 .. 2^63-1 (a store may hold fewer:
#: PostgreSQL's INTEGER columns end at 2^31-1; the API answers 404 beyond them).
ID_MAX = 2**63 - 1
#: A request body (JSON or form), in bytes.
BODY_MAX_BYTES = 1024 * 1024
#: A job file read by ``cpool submit``, in bytes.
JOB_FILE_MAX_BYTES = 1024 * 1024
#: Any string field without a tighter cap.
STR_MAX = 4096
#: Names: jobs, datasets, data handlers, approvals.
NAME_MAX = 128
#: Short identifiers: job type, data class, jurisdiction, accelerator type, stack, cohort.
SHORT_MAX = 64
#: The command: a shell line, or the sum of an argv list's items (characters).
COMMAND_MAX = 65_536
ARGV_MAX_ITEMS = 1024
ARGV_ITEM_MAX = 32_768
#: Environment variables: count, name, value, and names plus values together.
ENV_MAX_VARS = 256
ENV_NAME_MAX = 128
ENV_VALUE_MAX = 32_768
ENV_TOTAL_MAX = 65_536
DATASETS_MAX = 64
ACCELERATOR_TYPES_MAX = 32
STACKS_MAX = 16
#: The working directory: bytes of the whole path (PATH_MAX) and of one component (NAME_MAX).
WORKDIR_MAX_BYTES = 4096
PATH_COMPONENT_MAX_BYTES = 255
IDEMPOTENCY_KEY_MAX = 128
#: Numbers with no natural limit still get one (all finite).
WORK_MAX = 1e12  # H100-seconds: ~30,000 H100-years
SIZE_GB_MAX = 1e9
PERSONS_MAX = 2_000_000_000  # stored in 32-bit counters on PostgreSQL
MONEY_MAX = 1e15
QUOTA_MAX = 1e9
QUOTA_KEYS_MAX = 1024
#: Logs: bytes in one response, and bytes read from a file at a time.
LOG_RESPONSE_MAX_BYTES = 1024 * 1024
LOG_CHUNK_BYTES = 64 * 1024

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def bad_char(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL or an unpaired surrogate), or None."""
    m = _BAD_CHAR.search(text)
    if m is None:
        return None
    if m.group() == "\x00":
        return "must not contain NUL (\\x00) characters"
    return "must be valid Unicode (it holds an unpaired surrogate)"


def _find_bad(value: Any) -> str | None:
    if isinstance(value, str):
        return bad_char(value)
    if isinstance(value, dict):
        for k, v in value.items():
            why = _find_bad(k) or _find_bad(v)
            if why:
                return why
    elif isinstance(value, list | tuple):
        for v in value:
            why = _find_bad(v)
            if why:
                return why
    return None  # numbers, booleans, nested models (they check their own fields)


class BoundedModel(BaseModel):
    """A request body: no unknown fields, finite numbers, storable and bounded strings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=STR_MAX)

    @field_validator("*")
    @classmethod
    def _storable(cls, v: Any, _info: ValidationInfo) -> Any:
        why = _find_bad(v)
        if why:
            raise ValueError(why)
        return v


def workdir_error(path: str) -> str | None:
    """Why ``path`` is not a syntactically valid absolute path, or None (whether it exists
    and is usable is checked when the job starts)."""
    if not path.startswith("/"):
        return "must be an absolute path"
    why = bad_char(path)
    if why:
        return why
    if len(path.encode()) > WORKDIR_MAX_BYTES:
        return f"must be at most {WORKDIR_MAX_BYTES} bytes"
    if any(len(part.encode()) > PATH_COMPONENT_MAX_BYTES for part in path.split("/")):
        return f"each path component must be at most {PATH_COMPONENT_MAX_BYTES} bytes"
    return None
