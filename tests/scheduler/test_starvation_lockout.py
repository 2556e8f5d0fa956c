"""The starvation guard must not lock a newcomer out between counter resets.

On a live pool (0.1 s rounds, the guard at 2 rounds = 0.2 s) a gang holding every K80 was owed
0.36 s at the reset its neighbour's arrival caused (its start lag: it held its share before
its processes ran). The guard judged rows by that deficit alone, frozen until the next reset:
the gang, served all along, stayed "starving" and went first every round, and the newcomer,
served nothing, owed nothing; with no further change no reset came and the newcomer waited
for good (``tests/server/test_live_config.py`` under load).
"""

from __future__ import annotations

from computepool.model.job import Job
from computepool.policies import get_policy
from computepool.scheduler.loop import Scheduler, SchedulerConfig
from computepool.sim.cluster import SimClock, WorkloadSource
from tests.builders import make_pool, rates_table, workload
from tests.fakes import RecordingCluster


def _job(name: str, tenant: str, workers: int, at: float) -> Job:
    return Job(id=name, tenant=tenant, job_type="m", total_steps=1e9, arrival=at,
               workers=workers)  # fmt: skip


def test_a_gang_owed_time_at_a_reset_does_not_lock_a_newcomer_out():
    pool = make_pool({"A": (9, 4)})
    tp = rates_table(pool, {"m": {"A": 1.0}})
    w = workload([_job("gang", "holder", 36, 0.0), _job("small", "newcomer", 1, 2.0)])
    clock = SimClock(0.0)
    cfg = SchedulerConfig.live(0.1)
    s = Scheduler(pool, w, tp, get_policy("las"), RecordingCluster(), clock, WorkloadSource(w),
                  cfg)  # fmt: skip
    gang, small = 0, 1

    def rounds(n: int) -> int:
        """Step ``n`` rounds; in how many of them the newcomer ran."""
        ran = 0
        for _ in range(n):
            s.step()
            clock.sleep_until(clock.now() + cfg.round_seconds)
            rows = {int(j): r for r, j in enumerate(s.active.job)}
            ran += int(small in rows and s.active.running[rows[small]] >= 0)
        return ran

    assert rounds(21) >= 1  # the newcomer arrives at 2.0 s (a reset): the two take turns
    a = s.active
    row = {int(j): r for r, j in enumerate(a.job)}[gang]
    # the gang's start lag, as the live pool measured it at that reset: over the guard
    a.deficit[row, 0] = 0.356
    # served all along from here, the gang is not starving: the two keep taking turns
    assert rounds(30) >= 10, "the newcomer was locked out"
