"""Status: every "no" carries a code and the rule, quota or constraint that refused."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StatusCode(enum.StrEnum):
    OK = "ok"
    #: Cannot run now (capacity, quota), may run later.
    UNSCHEDULABLE = "unschedulable"
    #: Can never run as submitted (no flavor has the stack, more accelerators than exist, law).
    UNRESOLVABLE = "unresolvable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Status:
    code: StatusCode
    reason: str = ""
    #: The plugin, rule or quota that decided (e.g. ``residency:CN-1``, ``quota:team-a``).
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.code is StatusCode.OK

    @classmethod
    def success(cls) -> Status:
        return cls(StatusCode.OK)

    @classmethod
    def unschedulable(cls, reason: str, source: str = "") -> Status:
        return cls(StatusCode.UNSCHEDULABLE, reason, source)

    @classmethod
    def unresolvable(cls, reason: str, source: str = "") -> Status:
        return cls(StatusCode.UNRESOLVABLE, reason, source)
