"""Placement: which node and which device slots (after the policy chose who and which flavor).

``SlotState`` (state.py) holds free device milli-units, CPU and memory of every node;
``PlacementEngine`` (engine.py) runs a ``Profile`` (profiles.py: filters -> scorers -> device
selector) to bind one worker; ``place_gang`` (gang.py) binds all workers of a job or none,
island-consolidated where it can; ``PoolPlacer`` (placer.py) is the Scheduler's ``Placer``;
``run_pack`` (pack.py) is the FGD packing experiment. See docs/placement.md.
"""

from computepool.placement.engine import Binding, PlacementEngine
from computepool.placement.frag import TargetWorkload, node_frag
from computepool.placement.gang import GangPlacement, place_gang
from computepool.placement.profiles import Profile, get_profile, profile_names
from computepool.placement.request import PodRequest
from computepool.placement.state import MILLI, SlotState

__all__ = [
    "MILLI",
    "Binding",
    "GangPlacement",
    "PlacementEngine",
    "PodRequest",
    "Profile",
    "SlotState",
    "TargetWorkload",
    "get_profile",
    "node_frag",
    "place_gang",
    "profile_names",
]
