"""The batched replay's reused window sums are the direct computation's, bit for bit."""

import numpy as np

from computepool.serving.perf import PerfAssumptions
from computepool.serving.replay import ServiceReplay
from computepool.serving.replay_batch import ReplayBatch
from tests.serving.helpers import stream
from tests.serving.test_replay import _shape


def _batch() -> ReplayBatch:
    rates = [np.r_[np.full(1500, 4.0), np.full(1500, 20.0)], np.full(3000, 0.3), np.zeros(3000)]
    replays = []
    for i, r in enumerate(rates):
        s = stream(r, prompt=500 + 700 * i, seed=i)
        work = np.random.default_rng(10 + i).uniform(1e12, 9e12, len(s))
        replays.append(ServiceReplay(s, work, _shape(), 0.1, PerfAssumptions(), bin_s=2.0))
    return ReplayBatch(replays)


def _direct(b: ReplayBatch, ends: np.ndarray, width: float, key: str) -> np.ndarray:
    e = np.broadcast_to(ends, (len(b.replays), len(ends)))
    return b._window(e - width, e, (key,))[key]


def test_window_sums_reused_across_rounds_equal_the_direct_sums():
    b = _batch()
    rng = np.random.default_rng(0)
    now, reused, nonzero = 0.0, 0, 0
    for _ in range(60):
        # mostly regular rounds (windows overlap the last call's), sometimes an odd step
        now += 30.0 if rng.random() < 0.8 else float(rng.uniform(0.1, 200.0))
        ends = np.arange(now, now - 120.0 + 2.0 - 1e-9, -0.5)[::-1]
        wide = np.arange(now, now - 120.0 + 8.0 - 1e-9, -2.0)[::-1]
        for e, w, key in ((ends, 2.0, "flops"), (ends, 2.0, "n"), (wide, 8.0, "flops")):
            before = b._win_cache.get((w, key))
            got = b._windows_at(e, w, key)
            if before is not None:
                reused += int(np.isin(e, before[0]).sum())
            np.testing.assert_array_equal(got, _direct(b, e, w, key))
            nonzero += int((got > 0).sum())
        # the same windows again (all reused)
        np.testing.assert_array_equal(b._windows_at(ends, 2.0, "n"), _direct(b, ends, 2.0, "n"))
    assert reused > 1000  # the sums were reused, not only recomputed
    assert nonzero > 1000  # and they are not all empty windows
