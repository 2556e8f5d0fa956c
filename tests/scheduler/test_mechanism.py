import numpy as np

from computepool.model.allocation import Allocation
from computepool.scheduler.mechanism import (
    assign_ordered,
    assign_time_shares,
    speed_order,
    time_share_priorities,
)


def _assign(
    share,
    cap,
    *,
    sf=None,
    running=None,
    received=None,
    flavor_time=None,
    deficit=None,
    usable=None,
    order=None,
    deficit_limit=float("inf"),
):
    share = np.asarray(share, dtype=float)
    n, F = share.shape
    return assign_time_shares(
        share,
        np.ones((n, F), dtype=bool) if usable is None else np.asarray(usable, bool),
        np.ones(n, dtype=np.int64) if sf is None else np.asarray(sf),
        np.asarray(cap),
        np.full(n, -1) if running is None else np.asarray(running),
        np.full((n, F), 180.0) if received is None else np.asarray(received, dtype=float),
        np.full(F, 180.0 * n) if flavor_time is None else np.asarray(flavor_time, float),
        np.zeros((n, F)) if deficit is None else np.asarray(deficit, dtype=float),
        np.arange(F) if order is None else np.asarray(order),
        deficit_limit,
    )


def test_least_served_first():
    # equal shares; row 0 already had most of the flavor's time
    out = _assign([[0.5], [0.5]], [1], received=[[900.0], [180.0]], flavor_time=[1080.0])
    assert out.tolist() == [-1, 0]


def test_never_served_rows_go_first():
    prio = time_share_priorities(
        np.array([[0.1], [0.9]]), np.array([[0.0], [500.0]]), np.array([500.0])
    )
    assert prio[0, 0] > prio[1, 0]
    out = _assign([[0.1], [0.9]], [1], received=[[0.0], [500.0]], flavor_time=[500.0])
    assert out.tolist() == [0, -1]


def test_no_row_on_two_flavors_and_capacity_respected():
    rng = np.random.default_rng(3)
    n, F = 40, 3
    share = rng.random((n, F))
    share /= share.sum(axis=1, keepdims=True)
    sf = rng.choice([1, 2, 4], size=n)
    cap = np.array([8, 8, 8])
    out = _assign(share, cap, sf=sf, received=rng.random((n, F)) * 100)
    used = np.bincount(out[out >= 0], weights=sf[out >= 0], minlength=F)
    assert np.all(used <= cap)
    assert len(out) == n  # one flavor (or none) per row by construction


def test_lease_extension_keeps_running_row_on_its_flavor():
    # two rows with identical keys; the one running on f0 keeps it (no restart)
    out = _assign([[0.5], [0.5]], [1], running=[-1, 0])
    assert out.tolist() == [-1, 0]


def test_leftover_room_goes_to_rows_without_share():
    out = _assign([[1.0, 0.0], [0.0, 0.0]], [1, 1])
    assert out.tolist() == [0, 1]


def test_unusable_flavor_never_assigned():
    out = _assign([[0.0, 1.0]], [1, 1], usable=[[True, False]])
    assert out.tolist() == [0]


def test_flavors_filled_in_order_and_deficit_breaks_ties():
    # row 0 wants f1 only; rows 1 and 2 tie on f0; row 2 is owed more time
    out = _assign([[0, 1], [1, 0], [1, 0]], [1, 1], deficit=[[0, 0], [0, 0], [50, 0]], order=[1, 0])
    assert out.tolist() == [1, -1, 0]


def test_gang_that_does_not_fit_is_skipped():
    out = _assign([[0.9], [0.5]], [3], sf=[4, 2])
    assert out.tolist() == [-1, 0]


def test_ordered_allocation_fast_path_and_order():
    alloc = Allocation(np.array([0, 1]), np.array([0, 1]), np.ones(2))
    out = assign_ordered(alloc, np.array([2, 2]), np.array([2, 2]), np.array([-1, -1]))
    assert out.tolist() == [0, 1]
    alloc = Allocation(np.array([0, 1]), np.array([0, 0]), np.ones(2), priority=np.array([0, 1.0]))
    out = assign_ordered(alloc, np.array([1, 1]), np.array([1]), np.array([-1, -1]))
    assert out.tolist() == [-1, 0]


def test_speed_order_fastest_first():
    rates = np.array([[1.0, 4.0, 2.0], [1.0, 3.0, 2.5]])
    assert speed_order(rates).tolist() == [1, 2, 0]


def _gang_behind_singles(gang_share=0.05, gang_deficit=5000.0):
    """Four singles with big shares and one 4-wide gang with a small share, 4 devices."""
    share = [[0.5], [0.5], [0.5], [0.5], [gang_share]]
    deficit = [[0.0], [0.0], [0.0], [0.0], [gang_deficit]]
    return dict(share=share, cap=[4], sf=[1, 1, 1, 1, 4], deficit=deficit)


def test_without_the_guard_a_small_share_gang_loses_to_singles():
    # Gavel's order: priority first; the owed gang only breaks ties, so it never runs here.
    out = _assign(**_gang_behind_singles())
    assert out.tolist() == [0, 0, 0, 0, -1]


def test_starvation_guard_runs_the_owed_gang_first():
    out = _assign(**_gang_behind_singles(), deficit_limit=720.0)
    assert out.tolist() == [-1, -1, -1, -1, 0]


def test_starvation_guard_ignores_rows_owed_less_than_the_limit():
    out = _assign(**_gang_behind_singles(gang_deficit=700.0), deficit_limit=720.0)
    assert out.tolist() == [0, 0, 0, 0, -1]


def test_starvation_guard_needs_a_share_on_the_flavor():
    # owed time elsewhere does not promote a row onto a flavor it holds no share of
    out = _assign(**_gang_behind_singles(gang_share=0.0), deficit_limit=720.0)
    assert out.tolist() == [0, 0, 0, 0, -1]


def test_starving_rows_most_owed_first():
    share = [[0.1], [0.1], [0.9]]
    deficit = [[2000.0], [9000.0], [0.0]]
    out = _assign(share, [2], sf=[2, 2, 1], deficit=deficit, deficit_limit=720.0)
    assert out.tolist() == [-1, 0, -1]
