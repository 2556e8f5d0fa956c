import numpy as np
import pytest

from computepool.admission.residency import ResidencyCheck
from computepool.model.job import Dataset, Job
from computepool.policies import get_policy
from computepool.policies.cost_region import flavor_extra_cost_per_hour
from computepool.sim.run import SimConfig, simulate
from tests.admission.regions import REGIONS, region_pool
from tests.builders import rates_table, workload


def test_extra_cost_is_energy_plus_carbon_price():
    pool = region_pool()
    extra = flavor_extra_cost_per_hour(pool, carbon_usd_per_t=100.0)
    f = [fl.name for fl in pool.flavors].index("eu-frankfurt/A")
    kwh = 0.4 * 1.3  # TDP 400 W x PUE 1.3
    assert extra[f] == pytest.approx(kwh * 0.18 + 100.0 * kwh * 363.0 / 1e6)
    assert np.all(flavor_extra_cost_per_hour(pool, energy=False) == 0.0)


def _run(policy, jobs, pool, **kw):
    tp = rates_table(pool, {"m": {"A": 1.0}})
    check = ResidencyCheck(pool=pool, regions=REGIONS)
    res = simulate(
        pool,
        workload(jobs),
        tp,
        get_policy(policy, **kw),
        SimConfig(round_seconds=60),
        checks=(check,),
    )
    return res, {r["job"]: r["region"] for r in check.audit.records() if r["outcome"] == "allowed"}


POOL = {"cn-ulanqab": {"A": (1, 8)}, "ap-singapore": {"A": (1, 8)}, "eu-frankfurt": {"A": (1, 8)}}


def test_cheapest_legal_region_first_then_the_next():
    pool = region_pool(POOL)
    jobs = [Job(str(i), job_type="m", total_steps=3600.0, workers=8) for i in range(3)]
    _, where = _run("cost-region", jobs, pool)
    # same catalog price everywhere: energy decides (Ulanqab 0.053 < Frankfurt 0.18 < Singapore 0.20)
    assert where == {"0": "cn-ulanqab", "1": "eu-frankfurt", "2": "ap-singapore"}


def test_greenest_region_with_carbon_objective():
    pool = region_pool(POOL)
    _, where = _run(
        "cost-region", [Job("0", job_type="m", total_steps=3600.0)], pool, objective="carbon"
    )
    assert where == {"0": "eu-frankfurt"}


def test_legality_comes_first_and_data_movement_counts():
    pool = region_pool(POOL)
    eu = Dataset("eu", "eu.personal", "EU", "eu-frankfurt", 10.0)
    _, where = _run(
        "cost-region", [Job("0", job_type="m", total_steps=3600.0, datasets=(eu,))], pool
    )
    assert where == {"0": "eu-frankfurt"}
    # 20 TB of free-to-move data in Frankfurt: copying it to Ulanqab costs more than the energy saved
    big = Dataset("maps", "general", "EU", "eu-frankfurt", 20_000.0)
    _, where = _run(
        "cost-region", [Job("0", job_type="m", total_steps=3600.0, datasets=(big,))], pool
    )
    assert where == {"0": "eu-frankfurt"}
