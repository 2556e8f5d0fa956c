"""Per-model keep-alive from each model's past idle times (serving/keepalive.py)."""

from types import SimpleNamespace

import numpy as np

from computepool.serving.keepalive import cold_flags_table, fixed, histogram_table
from computepool.serving.mux import cold_flags


def _cfg(**kw):
    base = dict(
        keep_alive_s=60.0,
        keep_alive_quantile=0.99,
        keep_alive_margin=0.1,
        keep_alive_max_s=60.0,
        keep_alive_min_samples=20,
        keep_alive_window_s=3600.0,
        keep_alive_epoch_s=300.0,
    )
    base.update(kw)
    return SimpleNamespace(**base)


def _two_members(seed=0):
    rng = np.random.default_rng(seed)
    t0 = np.cumsum(rng.exponential(2.0, 1000))  # busy: idle times of ~2 s
    t1 = np.cumsum(rng.exponential(200.0, 10))  # rare: too few idle times
    t = np.r_[t0, t1]
    m = np.r_[np.zeros(len(t0), int), np.ones(len(t1), int)]
    o = np.argsort(t, kind="stable")
    return t[o], m[o]


def test_a_busy_model_gets_its_idle_times_quantile_a_rare_one_the_fallback():
    t, m = _two_members()
    tab = histogram_table(t, m, 2, 1800.0, _cfg())
    assert tab.ka[0, 1] == 60.0  # nothing before the first epoch: fixed
    assert 5.0 < tab.ka[3, 0] < 20.0  # p99 of exponential(2 s) = 9.2 s, +10 %
    assert (tab.ka[:, 1] == 60.0).all()  # 10 idle times < 20: not representative
    # beyond the histogram's range: the fixed value
    assert (histogram_table(t, m, 2, 1800.0, _cfg(keep_alive_max_s=5.0)).ka == 60.0).all()


def test_an_epochs_keep_alive_reads_only_idle_times_ended_before_it():
    t, m = _two_members()
    tab = histogram_table(t, m, 2, 1800.0, _cfg())
    cut = 900.0  # epoch 3 starts here: change everything after it
    later = t >= cut
    t2 = np.r_[t[~later], cut + 3 * (t[later] - cut)]
    tab2 = histogram_table(t2, m, 2, 1800.0, _cfg())
    assert np.array_equal(tab.ka[:4], tab2.ka[:4])
    assert not np.array_equal(tab.ka[4:], tab2.ka[4:])


def test_the_previous_period_fills_the_first_epochs_histogram():
    t, m = _two_members()
    pt, pm = _two_members(seed=1)
    tab = histogram_table(t, m, 2, 1800.0, _cfg(), pt, pm, float(pt[-1]) + 1.0)
    assert 5.0 < tab.ka[0, 0] < 20.0


def test_a_fixed_table_gives_the_fixed_cold_flags():
    t, m = _two_members()
    for ka in (1.0, 5.0, 60.0):
        assert np.array_equal(cold_flags_table(t, m, fixed(ka, 2)), cold_flags(t, m, ka))


def test_a_gap_that_outlives_its_first_epochs_keep_alive_is_cold():
    tab = histogram_table(np.zeros(0), np.zeros(0, int), 1, 600.0, _cfg())
    tab.ka[:] = [[10.0], [100.0]]  # epoch 0: 10 s, epoch 1: 100 s
    t = np.array([0.0, 280.0, 320.0, 580.0, 650.0])
    cold = cold_flags_table(t, np.zeros(5, int), tab)
    # 280: gap 280 > 10; 320: idle 20 s in epoch 0 (> 10) -> evicted; 580: gap 260 > 100;
    # 650: gap 70 <= 100 in epoch 1
    assert cold.tolist() == [True, True, True, True, False]
    tab.ka[:] = [[30.0], [100.0]]
    cold = cold_flags_table(np.array([0.0, 280.0, 320.0]), np.zeros(3, int), tab)
    assert cold.tolist() == [True, True, False]  # 20 s in epoch 0 <= 30, 40 s <= 100
