"""The shared data folder (``../shared/data`` beside the repository) for tests of whole traces.

Set ``COMPUTEPOOL_SHARED_DATA`` to point elsewhere; tests that need a file there are skipped
when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(
    os.environ.get("COMPUTEPOOL_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data")
)


def shared(rel: str) -> Path:
    """``SHARED / rel``, or skip the calling test when it is not there."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p
