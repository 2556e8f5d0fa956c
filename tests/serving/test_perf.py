import numpy as np
import pytest

from computepool.serving.models import ModelSpec
from computepool.serving.packing import devices_needed, extra_devices, pack
from computepool.serving.perf import (
    Mix,
    PerfAssumptions,
    build_shapes,
    capacity_rps,
    per_seq_cost,
    prefill_flops,
)
from tests.serving.helpers import gpu, model, one_node_pool


def test_weight_and_kv_bytes_from_architecture():
    m = model("qwen2.5-72b")
    assert m.weight_bytes == pytest.approx(72.7e9 * 2)
    # 2 (K, V) x 80 layers x 8 KV heads x 128 head dim x 2 bytes
    assert m.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2
    fp8 = ModelSpec(**{**m.__dict__, "precision": "fp8"}) if hasattr(m, "__dict__") else None
    assert fp8 is None or fp8.weight_bytes == pytest.approx(72.7e9)


def test_prefill_flops_linear_plus_causal_attention():
    m = model("qwen2.5-7b")
    f = prefill_flops(m, np.array([1000.0, 2000.0]))
    lin = 2 * m.params * np.array([1000, 2000])
    attn = 2 * m.layers * m.attn_dim * np.array([1000, 2000]) ** 2
    assert f == pytest.approx(lin + attn)


def test_shapes_skip_what_does_not_fit_and_tp_stays_in_a_node():
    pool = one_node_pool(per_node=4, accel=gpu(mem=80))
    shapes = build_shapes(model("qwen2.5-72b"), pool)  # 145 GB of weights
    assert set(shapes.tp.tolist()) == {4}  # x1, x2 (144 GB usable) too small; x8 > node
    small = build_shapes(model("qwen2.5-1.5b"), pool)
    assert (small.frac < 1).any() and (small.tp == 1).any()
    nopack = build_shapes(model("qwen2.5-1.5b"), pool, packing=False)
    assert (nopack.frac == 1).all()


def test_capacity_closed_form_matches_brute_force_search():
    pool = one_node_pool()
    perf = PerfAssumptions()
    for name in ("qwen2.5-7b", "qwen2.5-72b", "qwen1.5-1.8b"):
        m = model(name)
        sh = build_shapes(m, pool)
        mix = Mix(2 * m.params * 1200, 200, 1300)
        cap = capacity_rps(sh, mix, 0.1, 0.6, perf)
        budget = perf.tbt_budget * 0.1
        k = per_seq_cost(sh, 1300)
        for i in range(len(sh)):
            y = np.linspace(0, cap[i] * 1.5 + 1e-6, 20001)
            rho = y * 200 * k[i]
            tau = np.where(rho < 1, sh.a[i] / np.maximum(1 - rho, 1e-12), np.inf)
            share = 1 - tau / budget
            util = y * mix.prefill_flops / (sh.flops[i] * np.where(share > 0, share, 1))
            ok = (share > 0) & (util <= 0.6) & (y * 200 * tau <= sh.kv_cap[i] / 1300)
            assert cap[i] == pytest.approx(y[ok].max(), rel=2e-3, abs=1e-3)


def test_packing_power_of_two_fills_devices():
    fr = [0.5, 0.25, 0.125, 0.125, 0.5, 0.25, 0.25]
    bins = pack(fr)
    assert len(bins) == devices_needed(fr) == 2
    for b in bins:
        assert sum(fr[i] for i in b) <= 1.0 + 1e-9
    assert extra_devices(0.75, 0.25) == 0 and extra_devices(0.75, 0.5) == 1
    with pytest.raises(ValueError, match="replica 0"):
        pack([0.3])
