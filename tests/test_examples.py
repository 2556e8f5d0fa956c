"""Every input file under examples/ is valid (``cpool validate`` says OK), so the examples a
newcomer copies cannot drift from what the product accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from computepool.cli.file_kinds import check_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: Files under examples/ that are not product input: docs and the emulated replica script.
NOT_INPUT = {".md", ".py"}
INPUTS = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix not in NOT_INPUT)
#: Research data an example refers to that lives beside the repository, not in it.
SHARED = ROOT.parent / "shared" / "data"


def test_every_example_is_accounted_for():
    others = {p for p in EXAMPLES.rglob("*") if p.is_file()} - set(INPUTS)
    assert all(p.suffix in NOT_INPUT for p in others)
    assert len(INPUTS) >= 10


@pytest.mark.parametrize("path", INPUTS, ids=[str(p.relative_to(EXAMPLES)) for p in INPUTS])
def test_example_is_valid(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name research data as ../shared/data, from the repo root
    out = check_file(path.relative_to(ROOT))
    if out.kind == "study" and not (SHARED / "philly").is_dir():
        # Without the shared data folder the only problem may be that very trace.
        assert [f.field for f in out.findings] == ["workload"], out.findings
        assert "not found" in out.findings[0].reason
        return
    assert out.ok, "\n".join(map(str, out.findings))
