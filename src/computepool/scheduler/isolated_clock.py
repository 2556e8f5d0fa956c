"""Gavel's cumulative isolated time, kept by the scheduler for finish-time fairness.

At each allocation of a policy that asks for it (``keeps_isolated_clock``), every job in the
policy's input that was also in the previous allocation's input adds the steps it did since then
divided by its isolated throughput *at* that previous allocation (Gavel's
``FinishTimeFairnessPolicyWithPerf``: ``_cumulative_isolated_time``,
``_num_steps_remaining_prev_iteration``, ``_isolated_throughputs_prev_iteration``). The policy
reads the totals from ``PolicyInput.extras`` and keeps no state itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from computepool.policies.base import Policy, PolicyInput
from computepool.policies.ftf import ISOLATED_DONE


@dataclass
class IsolatedClock:
    #: job -> cumulative isolated seconds (jobs in the last allocation's input only).
    total: dict[int, float] = field(default_factory=dict)
    #: job -> (steps left, isolated steps/s) at the last allocation.
    prev: dict[int, tuple[float, float]] = field(default_factory=dict)

    def advance(self, jobs: np.ndarray, left: np.ndarray, rate: np.ndarray) -> dict[int, float]:
        """Account the steps done since the last allocation; remember this one. A job not in
        this allocation's input is forgotten (Gavel keeps its total; it never returns there)."""
        total: dict[int, float] = {}
        prev: dict[int, tuple[float, float]] = {}
        for j, s, r in zip(jobs.tolist(), left.tolist(), rate.tolist(), strict=True):
            t = self.total.get(j, 0.0)
            before = self.prev.get(j)
            if before is not None and before[1] > 0:
                t += (before[0] - s) / before[1]
            total[j] = t
            prev[j] = (s, r)
        self.total, self.prev = total, prev
        return dict(total)


def with_isolated_clock(policy: Policy, clock: IsolatedClock, inp: PolicyInput) -> PolicyInput:
    """``inp`` with the policy's cumulative isolated times in its extras, the clock advanced;
    ``inp`` unchanged for a policy that does not keep the clock."""
    if not getattr(policy, "keeps_isolated_clock", False):
        return inp
    rate = policy.isolated_rate(inp)  # type: ignore[attr-defined]
    done = clock.advance(inp.job, inp.steps_left, rate)
    return replace(inp, extras={**inp.extras, ISOLATED_DONE: done})
