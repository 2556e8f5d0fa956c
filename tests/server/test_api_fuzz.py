"""Schemathesis against the live API in-process: every operation of the OpenAPI document,
valid and invalid inputs, with a tenant's and the admin's token. No answer may be a 5xx.

Bounded: ``BUDGET_S`` seconds per store (SQLite and PostgreSQL), a fixed number of examples
per operation and mode. The tenant's quota is 0, so no fuzzed command is ever started.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.generation import GenerationMode  # noqa: E402

BUDGET_S = 25.0
EXAMPLES = 20
#: Revoking token ids 1, 2, ... would revoke the fuzzer's own tokens (ids are tested in
#: test_api_bounds.py).
SKIP = {("DELETE", "/v1/tokens/{token_id}")}


def fuzz_one(op, mode, op_end: float, tokens, seen: Counter, errors: list) -> None:
    """Up to ``EXAMPLES`` cases of one operation, each sent with every token, until ``op_end``."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        if time.monotonic() > op_end:
            return
        for who, headers in tokens.items():
            r = case.call(headers=headers)
            seen[f"{r.status_code // 100}xx"] += 1
            if r.status_code >= 500:
                errors.append((who, op.method, op.path, case.path_parameters, case.query,
                               case.body, r.status_code, r.text[:200]))  # fmt: skip

    with contextlib.suppress(Unsatisfiable):  # nothing invalid to send (no parameters)
        run()


def fuzz(app, tokens: dict[str, dict[str, str]], budget_s: float) -> tuple[Counter, list]:
    """(answers by status class, the 5xx answers) of fuzzing every operation of ``app``."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if (op.method.upper(), op.path) not in SKIP]
    seen: Counter = Counter()
    errors: list = []
    end = time.monotonic() + budget_s
    per_op = budget_s / (2 * len(ops))
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for op in ops:
            op_end = min(end, time.monotonic() + per_op)
            fuzz_one(op, mode, op_end, tokens, seen, errors)
    return seen, errors


def test_no_input_makes_the_api_answer_5xx(live):
    a = live.tenant("fuzz-tenant-7f3a", quotas={"*": {"nominal": 0}})
    live.submit(a, command="true", name="one job to look at")
    seen, errors = fuzz(live.client.app, {"tenant": a, "admin": live.admin}, BUDGET_S)
    total = sum(seen.values())
    print(f"\nschemathesis: {total} requests, by class {dict(seen)}, 5xx: {len(errors)}")
    assert total > 200, seen
    assert not errors, errors[:5]
