"""Bad pool files: one test per case; the message names the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from computepool.catalog.pools import PoolFileError, load_pool, validate_pool_file

GOOD_GROUP = "{prefix: a, region: us-central, accelerator: V100, per_node: 4, nodes: 2}"


def write(tmp_path: Path, body: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(PoolFileError) as info:
        load_pool(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.file == str(path) and err.problems
    text = str(err)
    assert str(path) in text, "message must name the file"
    assert "\n" in text
    return text


def test_unknown_accelerator_lists_known(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"""name: x
regions: [us-central]
node_groups:
  - {GOOD_GROUP}
  - {{prefix: b, region: us-central, accelerator: H1000, per_node: 8, nodes: 1}}
""",
    )
    text = error_of(p)
    assert "node_groups[1].accelerator" in text
    assert "unknown accelerator type 'H1000'" in text and "H100, H20" in text


def test_unknown_region(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"""name: x
regions: [us-central, mars-1]
node_groups: [{GOOD_GROUP}]
""",
    )
    text = error_of(p)
    assert "regions[1]" in text and "unknown region 'mars-1'" in text and "cn-ulanqab" in text


def test_group_region_not_in_pool_regions(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """name: x
regions: [us-central]
node_groups:
  - {prefix: a, region: eu-frankfurt, accelerator: H100, per_node: 8, nodes: 1}
""",
    )
    text = error_of(p)
    assert "node_groups[0].region" in text and "not in this pool's regions" in text


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("per_node", -1, "greater than or equal to 1"), ("nodes", -3, "greater than or equal to 0")],
)
def test_negative_counts(tmp_path: Path, field: str, value: int, reason: str) -> None:
    group = GOOD_GROUP.replace(f"{field}: {2 if field == 'nodes' else 4}", f"{field}: {value}")
    p = write(
        tmp_path, f"name: x\nregions: [us-central]\nnode_groups:\n  - {GOOD_GROUP}\n  - {group}\n"
    )
    text = error_of(p)
    assert f"node_groups[1].{field}" in text and reason in text and str(value) in text


def test_duplicate_node_names(tmp_path: Path) -> None:
    p = write(
        tmp_path, f"name: x\nregions: [us-central]\nnode_groups: [{GOOD_GROUP}, {GOOD_GROUP}]\n"
    )
    text = error_of(p)
    assert "node_groups[1]" in text and "duplicate node name 'a-0'" in text
    assert "also from node_groups[0]" in text


def test_missing_csv(tmp_path: Path) -> None:
    p = write(tmp_path, "name: x\nregions: [us-central]\nnodes_csv: nowhere.csv\n")
    text = error_of(p)
    assert "nodes_csv.path" in text and "CSV file not found" in text and "nowhere.csv" in text


def test_bad_csv_row_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,64000,262144,two,P100\n"
        "n2,64000,262144,8,G9\n"
    )
    p = write(tmp_path, "name: x\nregions: [us-central]\nnodes_csv: n.csv\n")
    text = error_of(p)
    assert "nodes_csv" in text
    assert "n.csv:3:4 (gpu): 'two' is not an integer" in text
    assert "n.csv:4:5 (model): unknown accelerator type 'G9'" in text


def test_csv_missing_column(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text("sn,cpu_milli,gpu,model\nn0,1,2,P100\n")
    p = write(tmp_path, "name: x\nregions: [us-central]\nnodes_csv: n.csv\n")
    text = error_of(p)
    assert "n.csv:1" in text and "lacks column(s) memory_mib" in text


def test_csv_duplicate_with_group(tmp_path: Path) -> None:
    (tmp_path / "n.csv").write_text("sn,cpu_milli,memory_mib,gpu,model\na-0,1,1,2,P100\n")
    p = write(
        tmp_path, f"name: x\nregions: [us-central]\nnode_groups: [{GOOD_GROUP}]\nnodes_csv: n.csv\n"
    )
    text = error_of(p)
    assert "nodes_csv: duplicate node name 'a-0'" in text


def test_unknown_field(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """name: x
regions: [us-central]
node_groups:
  - {prefix: a, region: us-central, accelerator: V100, per_node: 4, nodes: 1, gpus: 3}
""",
    )
    text = error_of(p)
    assert "node_groups[0].gpus" in text and "unknown field" in text


def test_missing_required_field(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "name: x\nnode_groups:\n  - {prefix: a, region: us-central, per_node: 4, nodes: 1}\n",
    )
    text = error_of(p)
    assert "node_groups[0].accelerator" in text and "Field required" in text


def test_no_nodes_at_all(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "name: x\nregions: [us-central]\n"))
    assert "needs node_groups, nodes_csv or both" in text


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "name: x\nnode_groups: [\n  - {prefix: a\n"))
    assert "not valid YAML at line" in text


def test_top_level_not_mapping(tmp_path: Path) -> None:
    text = error_of(write(tmp_path, "- just\n- a list\n"))
    assert "top level must be a mapping" in text


def test_island_list_too_short(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """name: x
node_groups:
  - {prefix: a, region: us-central, accelerator: V100, per_node: 4, nodes: 5, island: [r0, r1], islands_of: 2}
""",
    )
    text = error_of(p)
    assert "node_groups[0].island" in text and "2 islands of 2 nodes hold 4 nodes" in text


def test_bad_island_template(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """name: x
node_groups:
  - {prefix: a, region: us-central, accelerator: V100, per_node: 4, nodes: 1, island: "r-{rack}"}
""",
    )
    text = error_of(p)
    assert "node_groups[0].island" in text and "only {i} may be used" in text


def test_bad_inline_accelerator(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"""name: x
accelerators:
  - {{name: X1, like: NOPE, source: "mine"}}
  - {{name: X2, like: H100, stack: cobol, source: "mine"}}
  - {{name: X3, like: H100, price_per_hour: "3 XYZ", source: "mine"}}
node_groups: [{GOOD_GROUP}]
""",
    )
    text = error_of(p)
    assert "accelerators[0].like" in text and "unknown accelerator 'NOPE'" in text
    assert "accelerators[1].stack" in text and "unknown software stack 'cobol'" in text
    assert "accelerators[2].price_per_hour" in text and "unknown currency 'XYZ'" in text


def test_bad_inline_region(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"""name: x
regions:
  - {{name: dc, jurisdiction: cn, electricity_usd_per_kwh: 0.1, pue: 0.9, carbon_g_per_kwh: 1,
      latitude: 0, longitude: 0, source: s}}
node_groups: [{GOOD_GROUP}]
""",
    )
    text = error_of(p)
    assert "regions[0].jurisdiction" in text and "regions[0].pue" in text


def test_unknown_pool_name() -> None:
    with pytest.raises(PoolFileError) as info:
        load_pool("no-such-pool")
    assert "no-such-pool" in str(info.value) and "gavel-36x3" in str(info.value)


def test_validate_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PoolFileError) as info:
        validate_pool_file(tmp_path / "missing.yaml")
    assert "missing.yaml" in str(info.value) and "file not found" in str(info.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """name: x
node_groups:
  - {prefix: a, region: nowhere, accelerator: V100, per_node: 4, nodes: 1}
  - {prefix: b, region: us-central, accelerator: NOPE, per_node: 4, nodes: 1}
""",
    )
    with pytest.raises(PoolFileError) as info:
        load_pool(p)
    assert len(info.value.problems) == 2
    assert str(info.value).startswith(f"pool file {p}: 2 problems")
