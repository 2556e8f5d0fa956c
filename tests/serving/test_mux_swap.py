"""``serving.residency: swap``: Aegaeon-style decode time-slicing with weight swaps."""

from dataclasses import replace

import numpy as np
import pytest

from computepool.serving.mux import (
    Members,
    floor_instances,
    instance_bytes,
    load_seconds,
    swap_cost,
    swap_time_floor,
)
from computepool.serving.perf import PerfAssumptions

W = 15e9  # a 7B-class model in bf16


def _members(n: int, perf: PerfAssumptions, a: float = 0.004) -> Members:
    return Members(
        a=np.full(n, a),
        kvr=np.zeros(n),
        c=np.zeros(n),
        kvb=np.full(n, 1e5),
        weight_bytes=np.full(n, W),
        load_s=np.full(n, load_seconds(W, "H800", 1, perf)),
    )


def _floors(perf: PerfAssumptions, tbt_slo: float = 0.1) -> tuple[int, int]:
    """(resident rule, swap rule) for 40 resident models of which 6 are decoding."""
    m = _members(40, perf)
    res = np.ones(40, dtype=bool)
    dec = np.arange(40) < 6
    mem = instance_bytes(80.0, 1, perf)
    busy = np.zeros(40)
    return (
        floor_instances(m, dec, res, busy, mem, perf, tbt_slo),
        floor_instances(m, dec, res, busy, mem, perf, tbt_slo, "swap"),
    )


def test_the_swap_floor_is_below_the_resident_floor_when_weights_set_it():
    mux, swap = _floors(PerfAssumptions())
    assert swap < mux  # 40 x 15 GB resident need 11 instances; 6 decoding ones far fewer
    assert swap >= 1


def test_the_swap_floor_grows_when_the_tbt_slo_tightens():
    perf = PerfAssumptions()
    loose, tight = _floors(perf, 0.1)[1], _floors(perf, 0.03)[1]
    assert tight > loose


def test_the_swap_floor_grows_when_the_host_link_slows():
    fast = _floors(PerfAssumptions())[1]
    slow = _floors(PerfAssumptions(h2d_efficiency=0.2))[1]
    assert slow > fast


def test_a_longer_turn_amortises_the_switches():
    perf = PerfAssumptions()
    m, dec = _members(6, perf), np.ones(6, dtype=bool)
    short = swap_time_floor(m, dec, 0.09, replace(perf, swap_turn_s=1.0))
    long = swap_time_floor(m, dec, 0.09, replace(perf, swap_turn_s=16.0))
    assert long < short
    # never more instances than decoding models (each alone: no switch at all)
    assert swap_time_floor(m, dec, 0.09, replace(perf, swap_turn_s=0.1)) <= 6


def test_the_replayed_step_carries_the_switches_only_when_models_share_an_instance():
    perf = PerfAssumptions()
    m = _members(6, perf)
    dec = np.ones((6, 1), dtype=bool)
    budget = 0.09
    shared = swap_cost(m, dec, np.array([2.0]), budget, perf)[0]
    tokens = perf.swap_turn_s / budget
    assert shared == pytest.approx(6 * m.load_s[0] / 2.0 / tokens)
    assert swap_cost(m, dec, np.array([6.0]), budget, perf)[0] == 0.0
