"""Placement profiles: an ordered chain of filters, weighted scorers and a device selector.

A policy name (``cpool pack --policy NAME``, ``cpool simulate --placement NAME``) resolves to a
``Profile``; profiles are validated when built, so a typo fails at load, not mid-run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from computepool.placement.filters import DEFAULT_FILTERS, FILTERS
from computepool.placement.scorers import SCORERS

#: How a share request picks its device on the chosen node.
DEVICE_SELECTORS = ("bestfit", "random", "scorer")
#: Scorers that measure fragmentation and so need a target workload.
NEEDS_TARGET = frozenset({"fgd", "fgd-exact", "fsgd"})
#: Scorers that also choose the device of a share request.
DEVICE_SCORERS = frozenset({"fgd", "fgd-exact", "fsgd"})


@dataclass(frozen=True)
class Profile:
    name: str
    filters: tuple[str, ...]
    scorers: tuple[tuple[str, float], ...]
    device: str = "bestfit"
    description: str = ""
    #: How ties among the best nodes are broken: "rank" (a fixed random order of the nodes,
    #: as the FGD artifact) or "random" (uniform, as stock kube-scheduler).
    ties: str = "rank"
    #: Share of tasks (most popular types first) that makes up the fragmentation target.
    target_share: float = 0.95

    def __post_init__(self) -> None:
        for f in self.filters:
            if f not in FILTERS:
                raise ValueError(
                    f"profile {self.name!r}: unknown filter {f!r}; known: {', '.join(FILTERS)}"
                )
        if not self.scorers:
            raise ValueError(f"profile {self.name!r}: needs at least one scorer")
        for s, w in self.scorers:
            if s not in SCORERS:
                raise ValueError(
                    f"profile {self.name!r}: unknown scorer {s!r}; known: {', '.join(SCORERS)}"
                )
            if w <= 0:
                raise ValueError(f"profile {self.name!r}: scorer {s!r} weight must be > 0")
        if self.device not in DEVICE_SELECTORS:
            raise ValueError(
                f"profile {self.name!r}: unknown device selector {self.device!r}; "
                f"known: {', '.join(DEVICE_SELECTORS)}"
            )
        if self.device == "scorer" and self.scorers[0][0] not in DEVICE_SCORERS:
            raise ValueError(
                f"profile {self.name!r}: device 'scorer' needs a device-choosing first scorer "
                f"({', '.join(sorted(DEVICE_SCORERS))})"
            )
        if not 0 < self.target_share <= 1:
            raise ValueError(f"profile {self.name!r}: target_share must be within (0, 1]")
        if self.ties not in ("rank", "random"):
            raise ValueError(f"profile {self.name!r}: ties must be 'rank' or 'random'")

    @property
    def needs_target(self) -> bool:
        return any(s in NEEDS_TARGET for s, _ in self.scorers)


def _p(name: str, scorer: str, device: str, text: str, ties: str = "rank") -> Profile:
    return Profile(name, DEFAULT_FILTERS, ((scorer, 1.0),), device, text, ties)


PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        p.name: p
        for p in (
            _p("random", "random", "random", "a random feasible node and device", "random"),
            _p("dotprod", "dotprod", "bestfit", "Tetris dot product of free and requested"),
            _p("clustering", "clustering", "bestfit", "keep tasks of one device-use kind together"),
            _p("packing", "packing", "bestfit", "fill shared devices, then used nodes"),
            _p("bestfit", "bestfit", "bestfit", "least CPU + device capacity left"),
            _p("fgd", "fgd", "scorer", "Fragmentation Gradient Descent (ATC'23), artifact scale"),
            _p("fsgd", "fsgd", "scorer", "FGD + capacity stranded for lack of CPU/memory (ours)"),
            _p("fgd-exact", "fgd-exact", "scorer", "FGD without score quantisation"),
        )
    }
)


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown placement profile {name!r}; known: {', '.join(PROFILES)}"
        ) from None


def make_profile(
    name: str,
    filters: Sequence[str],
    scorers: Sequence[tuple[str, float]],
    device: str = "bestfit",
    ties: str = "rank",
) -> Profile:
    """A custom profile from plugin names (validated)."""
    return Profile(name, tuple(filters), tuple(scorers), device, "", ties)
