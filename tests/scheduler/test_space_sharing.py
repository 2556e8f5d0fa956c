"""Space sharing in the round mechanism and the simulator: a pair co-runs on one device set."""

import numpy as np
import pytest

from computepool.model.throughput import Throughputs
from computepool.policies import get_policy
from computepool.scheduler.mechanism import assign_with_pairs
from computepool.sim.run import simulate
from tests.builders import jobs_at, make_pool, workload


def _pool_and_rates(pair: tuple[float, float]):
    pool = make_pool({"A": (1, 1)})
    tp = Throughputs(
        pool.accelerators,
        {("x", 1): {"A": 1.0}, ("y", 1): {"A": 1.0}},
        pairs={(("x", 1), ("y", 1)): {"A": pair}},
    )
    jobs = jobs_at([0.0], job_type="x", steps=3600.0) + jobs_at([0.0], job_type="y", steps=3600.0)
    for i, j in enumerate(jobs):
        object.__setattr__(j, "id", str(i))
    return pool, tp, workload(jobs)


def test_a_pair_progresses_at_its_pair_rates_on_one_device():
    pool, tp, w = _pool_and_rates((0.8, 0.8))
    res = simulate(pool, w, tp, get_policy("las-packed"))
    # together all the time at 0.8 steps/s: both done at 3600 / 0.8 = 4500 s
    np.testing.assert_allclose(res.end, [4500.0, 4500.0], atol=1e-6)
    busy = np.vstack(res.series.busy).sum()
    assert busy == pytest.approx(4500.0)  # one device held for 4500 s, not two


def test_without_space_sharing_the_jobs_take_turns():
    pool, tp, w = _pool_and_rates((0.8, 0.8))
    res = simulate(pool, w, tp, get_policy("las"))
    assert res.end.max() == pytest.approx(7200.0, abs=1.0)


def test_mechanism_places_each_row_once_and_a_pair_on_one_device():
    n, F = 4, 1
    share = np.full((n, F), 0.25)
    usable = np.ones((n, F), dtype=bool)
    recv = np.full((n, F), 180.0)
    zero = np.zeros((n, F))
    # pairs (0,1) and (1,2) both want the device first; row 1 can only be in one of them
    pa, pb = np.array([0, 1]), np.array([1, 2])
    p_share = np.array([[0.5], [0.5]])
    p_recv = np.array([[0.0], [0.0]])
    out, mate = assign_with_pairs(
        (share, usable, recv, zero),
        (pa, pb, p_share, np.ones((2, F), dtype=bool), p_recv, np.zeros((2, F))),
        np.ones(n, dtype=np.int64),
        np.array([2]),
        np.full(n, -1),
        np.full(n, -1),
        np.array([720.0]),
        np.array([0]),
    )
    assert mate[0] == 1 and mate[1] == 0  # the first pair got a device
    assert mate[2] == -1
    assert np.count_nonzero(out == 0) == 3  # pair (0, 1) + one single on the other device
    assert out[3] == 0 or out[2] == 0


def test_space_sharing_with_device_placement_is_refused_not_silently_dropped(tmp_path):
    """`cpool serve --policy las-packed` once ran plain `las`: space sharing was switched off
    whenever a placer existed, and the live pool always has one."""
    from typer.testing import CliRunner

    from computepool.cli.app import app
    from computepool.server.runtime import ServeSettings, build_app

    with pytest.raises(ValueError, match="'las-packed' shares devices"):
        build_app(
            ServeSettings(
                data_dir=tmp_path / "d", db_url=f"sqlite:///{tmp_path / 'c.db'}",
                pool="gavel-36x3", policy="las-packed",
            )
        )  # fmt: skip
    args = ["--pool", "gavel-36x3", "--workload", "gavel:rate=4.0,jobs=50,seed=0"]
    for cmd in (["simulate", *args, "--policy", "las-packed"],
                ["compare", *args, "--policies", "las,las-packed"]):  # fmt: skip
        res = CliRunner().invoke(app, [*cmd, "--placement", "bestfit"])
        assert res.exit_code == 2 and "shares devices" in res.output, res.output
