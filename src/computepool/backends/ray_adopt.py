"""Ray workers that outlive their control plane: detached actors found again by name.

Every attempt's placement group and actors are detached and named from a tag the attempt
records (``meta.json``: ``ray_tag``): the group ``cpool-<tag>``, rank R's actor
``cpool-<tag>-<R>`` in the ``computepool`` namespace. A control plane that starts after a
restart or a failover looks them up, asks each actor whether its rank was started, and
adopts the attempt when every rank lives (or has ended); otherwise it kills what is left.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from computepool.backends import attempts as att

#: The Ray namespace of the detached actors.
NAMESPACE = "computepool"
#: How long a recovering control plane waits for the found actors to answer.
PING_TIMEOUT_S = 10.0


def actor_name(tag: str, rank: int) -> str:
    return f"cpool-{tag}-{rank}"


def group_name(tag: str) -> str:
    return f"cpool-{tag}"


@dataclass
class Found:
    """An attempt's actors (rank order; None where none was found), its group, and the
    ranks whose actor answered that it was started."""

    actors: list[Any] = field(default_factory=list)
    group: Any = None
    answered: set[int] = field(default_factory=set)


def tag_of(rec: att.AttemptRecord) -> str:
    meta = att.read_json(rec.dir / "meta.json") or {}
    tag = meta.get("ray_tag")
    return tag if isinstance(tag, str) and tag.isalnum() and len(tag) <= 64 else ""


def find_attempt(ray: Any, rec: att.AttemptRecord) -> Found | None:
    """What of ``rec`` still lives on the cluster; None without a tag or a connection."""
    tag = tag_of(rec)
    if not tag or not ray.is_initialized():
        return None
    found, pings = Found(), {}
    for rank in range(len(rec.ranks)):
        try:
            a = ray.get_actor(actor_name(tag, rank), namespace=NAMESPACE)
        except ValueError:  # never created (the launch was cut short), or gone
            a = None
        found.actors.append(a)
        if a is not None:
            pings[a.ping.remote()] = rank
    if pings:
        ready, _ = ray.wait(list(pings), num_returns=len(pings), timeout=PING_TIMEOUT_S)
        for ref in ready:
            with contextlib.suppress(Exception):
                if ray.get(ref).get("started"):
                    found.answered.add(pings[ref])
    found.group = group_named(group_name(tag))
    return found


def group_named(name: str) -> Any:
    """The placement group of that name that is not removed, or None."""
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table

    for pg_id, info in placement_group_table().items():
        if info.get("name") == name and info.get("state") != "REMOVED":
            return PlacementGroup(PlacementGroupID(bytes.fromhex(pg_id)))
    return None


def kill_detached(ray: Any, actors: list[Any], group: Any) -> None:
    """Kill the actors (their ranks' processes die with them) and remove the group."""
    for a in actors:
        if a is not None:
            with contextlib.suppress(Exception):
                ray.kill(a, no_restart=True)
    if group is not None:
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):
            remove_placement_group(group)
