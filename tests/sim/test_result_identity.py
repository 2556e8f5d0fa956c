"""Speed work on the simulator must not change what it computes: small runs of the policies the
round mechanism serves differently (``las`` in Gavel's order and with the starvation guard, on
single-GPU jobs and on gangs; ``fifo``; ``ftf``) give the same per-job first start, end and
preemption count, to the bit, as the code before the issue-21 speed-ups (pinned in
``data/result_identity.json``; regenerate it only with a change that is meant to move results,
and say so):

    PYTHONPATH=src python -m tests.sim.test_result_identity tests/sim/data/result_identity.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from computepool.sim.run import SimConfig
from computepool.sim.runner import load_inputs, run_policy

GOLDEN = Path(__file__).parent / "data" / "result_identity.json"
CASES = [
    ("las", "gavel:rate=5.6,jobs=120,multi_gpu=false,seed=0", float("inf")),
    ("las", "gavel:rate=2.6,jobs=80,multi_gpu=true,seed=0", 2.0),
    ("fifo", "gavel:rate=2.6,jobs=80,multi_gpu=true,seed=0", 2.0),
    ("ftf", "gavel:rate=5.6,jobs=80,multi_gpu=false,seed=1", 2.0),
]


def _key(policy: str, workload: str, starvation: float) -> str:
    return f"{policy}|{workload}|{starvation}"


def run_case(policy: str, workload: str, starvation: float) -> dict:
    res = run_policy(
        load_inputs("gavel-36x3", workload), policy, SimConfig(starvation_rounds=starvation)
    )
    return {
        "end": res.end.tolist(),
        "first_start": res.first_start.tolist(),
        "preemptions": res.preemptions.tolist(),
        "rounds": res.series.rounds,
    }


@pytest.mark.parametrize(("policy", "workload", "starvation"), CASES)
def test_per_job_results_unchanged(policy: str, workload: str, starvation: float) -> None:
    want = json.loads(GOLDEN.read_text())[_key(policy, workload, starvation)]
    got = run_case(policy, workload, starvation)
    assert got["rounds"] == want["rounds"]
    for k in ("end", "first_start", "preemptions"):
        # NaN (never started / not finished) equal to NaN; everything else to the bit
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k], dtype=float), k)


if __name__ == "__main__":
    out = {_key(*c): run_case(*c) for c in CASES}
    Path(sys.argv[1]).write_text(json.dumps(out) + "\n")
