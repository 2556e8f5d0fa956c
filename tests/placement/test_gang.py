import numpy as np

from computepool.placement.engine import PlacementEngine
from computepool.placement.frag import TargetWorkload
from computepool.placement.gang import place_gang
from computepool.placement.profiles import get_profile
from computepool.placement.request import PodRequest
from tests.placement.helpers import state

EIGHT = PodRequest.whole(8)


def eng(spec, islands, policy="bestfit"):
    s = state(spec, islands=islands)
    target = TargetWorkload.from_requests([PodRequest.whole(k) for k in (1, 2, 4, 8)], s.types)
    return PlacementEngine(s, get_profile(policy), target, seed=0)


def test_a_gang_that_cannot_fit_binds_nothing():
    e = eng([("A", 8)] * 3, ["x", "x", "y"])
    before = e.state.gpu_free.copy()
    assert place_gang(e, [EIGHT] * 4) is None
    np.testing.assert_array_equal(e.state.gpu_free, before)
    e.state.allocate(0, [0], 1000)
    assert place_gang(e, [EIGHT] * 3) is None  # 2 whole nodes + 7 devices: still none
    assert e.state.used_gpu_milli() == 1000


def test_consolidated_placement_is_preferred_and_tightest_island_first():
    # island x: 2 nodes, island y: 3 nodes. A 2-node gang fits both; x is the tighter fit.
    e = eng([("A", 8)] * 5, ["x", "x", "y", "y", "y"])
    g = place_gang(e, [EIGHT, EIGHT])
    assert g is not None and g.consolidated
    assert {e.state.islands[e.state.island[b.node]] for b in g.bindings} == {"x"}
    # the next 3-node gang still finds island y whole
    g2 = place_gang(e, [EIGHT] * 3)
    assert g2 is not None and g2.consolidated and g2.nodes == 3


def test_a_gang_spreads_over_islands_only_when_it_must():
    e = eng([("A", 8)] * 4, ["x", "x", "y", "y"])
    g = place_gang(e, [EIGHT] * 3)
    assert g is not None and not g.consolidated and g.islands == 2
    assert e.state.used_gpu_milli() == 24_000
    assert place_gang(eng([("A", 8)] * 4, ["x", "x", "y", "y"]), [EIGHT] * 3, spread=False) is None


def test_gang_respects_the_allowed_nodes():
    e = eng([("A", 8)] * 4, ["x", "x", "y", "y"])
    allowed = np.array([False, True, True, True])
    g = place_gang(e, [EIGHT] * 2, allowed)
    assert g is not None and 0 not in {b.node for b in g.bindings}


def test_random_gangs_are_all_or_nothing():
    rng = np.random.default_rng(4)
    e = eng([("A", 8)] * 6 + [("A", 4)] * 4, list("xxyyzzwwvv"), policy="fsgd")
    for _ in range(60):
        before = e.state.used_gpu_milli()
        workers = [PodRequest.whole(int(rng.choice([1, 2, 4, 8])))] * int(rng.integers(1, 5))
        g = place_gang(e, workers)
        want = sum(w.total_gpu_milli for w in workers)
        after = e.state.used_gpu_milli()
        assert after - before == (want if g is not None else 0)
        if g is not None and rng.random() < 0.4:
            for b in g.bindings:
                e.unbind(b)
