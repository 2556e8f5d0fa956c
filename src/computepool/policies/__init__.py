"""Allocation policies: pure functions of (jobs, capacity, throughputs) -> Allocation."""

from computepool.policies.base import Policy, PolicyInput
from computepool.policies.registry import get_policy, policy_names

__all__ = ["Policy", "PolicyInput", "get_policy", "policy_names"]
