from __future__ import annotations

from pathlib import Path

import pytest

from computepool.catalog.throughputs import load_throughputs
from computepool.model.throughput import Throughputs

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def throughputs() -> Throughputs:
    return load_throughputs("gavel", with_pairs=False)


@pytest.fixture
def data_dir() -> Path:
    return DATA


def _assert_names(message: str, file: object, line: int | None, field: str) -> None:
    """The error message names the file, the line and the field."""
    assert str(file) in message, message
    if line is not None:
        assert f"{file}:{line}:" in message, message
    assert f"field {field!r}" in message, message


@pytest.fixture
def assert_names():
    return _assert_names
