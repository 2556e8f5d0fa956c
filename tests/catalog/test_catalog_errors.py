"""Bad catalog files (accelerators, regions, network) name file, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from computepool.catalog.accelerators import load_accelerators
from computepool.catalog.catalog import Catalog
from computepool.catalog.errors import CatalogFileError
from computepool.catalog.files import shipped
from computepool.catalog.regions import load_network, load_regions


def shipped_doc(name: str) -> dict:
    return yaml.safe_load(shipped(name).read_text())


def dump(tmp_path: Path, doc: dict, name: str) -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return p


def test_accelerator_row_without_source(tmp_path: Path) -> None:
    doc = shipped_doc("accelerators.yaml")
    del doc["accelerators"][3]["source"]
    doc["accelerators"][4]["tdp_w"] = -5
    p = dump(tmp_path, doc, "acc.yaml")
    with pytest.raises(CatalogFileError) as info:
        load_accelerators(p)
    text = str(info.value)
    assert str(p) in text
    assert "accelerators[3].source: Field required" in text
    assert "accelerators[4].tdp_w" in text and "greater than 0" in text


def test_duplicate_accelerator(tmp_path: Path) -> None:
    doc = shipped_doc("accelerators.yaml")
    doc["accelerators"].append(dict(doc["accelerators"][0]))
    p = dump(tmp_path, doc, "acc.yaml")
    with pytest.raises(
        CatalogFileError, match=r"duplicate accelerator 'H100' \(also accelerators\[0\]\)"
    ):
        load_accelerators(p)


def test_region_bad_values(tmp_path: Path) -> None:
    doc = shipped_doc("regions.yaml")
    doc["regions"][0]["latitude"] = 123
    doc["regions"][1]["electricity_usd_per_kwh"] = "cheap"
    p = dump(tmp_path, doc, "reg.yaml")
    with pytest.raises(CatalogFileError) as info:
        load_regions(p)
    text = str(info.value)
    assert "regions[0].latitude" in text and "less than or equal to 90" in text
    assert "regions[1].electricity_usd_per_kwh" in text and "'AMOUNT CUR'" in text


def test_network_link_to_unknown_region(tmp_path: Path) -> None:
    doc = shipped_doc("network.yaml")
    doc["links"].append({"a": "cn-beijing", "b": "atlantis", "rtt_ms": 3, "source": "x"})
    p = dump(tmp_path, doc, "net.yaml")
    assert load_network(p).links  # the file alone is well-formed
    with pytest.raises(CatalogFileError) as info:
        Catalog.load(network=p)
    assert "links[1]" in str(info.value) and "unknown region 'atlantis'" in str(info.value)


def test_network_link_needs_a_value(tmp_path: Path) -> None:
    doc = shipped_doc("network.yaml")
    doc["links"][0].pop("rtt_ms")
    p = dump(tmp_path, doc, "net.yaml")
    with pytest.raises(CatalogFileError, match=r"links\[0\]: .*rtt_ms, bandwidth_gbps or both"):
        load_network(p)
