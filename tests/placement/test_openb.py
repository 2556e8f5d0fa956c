import pytest

from computepool.placement.openb import TraceFileError, load_nodes, read_nodes, read_pods
from computepool.traces.errors import TraceError
from tests.placement.helpers import NODES, PODS

NODE_HEAD = "sn,cpu_milli,memory_mib,gpu,model\n"
POD_HEAD = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n"
)


def test_fixture_excerpts_read():
    s = read_nodes(NODES)
    assert len(s) == 40 and s.total_gpu_milli > 0
    pods = read_pods(PODS)
    assert len(pods) == 240
    assert any(r.is_share for r in pods.requests) and any(r.num_gpu == 0 for r in pods.requests)


def test_gpu_spec_is_split_on_bars(tmp_path):
    p = tmp_path / "pods.csv"
    p.write_text(POD_HEAD + "a,1000,10,1,500,V100M16|V100M32,LS,Running,0,,\n")
    assert read_pods(p).requests[0].gpu_spec == frozenset({"V100M16", "V100M32"})


@pytest.mark.parametrize(
    "body,match",
    [
        ("a,1000,10,1,abc,,LS,Running,0,,\n", r":2: field 'gpu_milli': 'abc' is not"),
        ("a,1000,10,-1,0,,LS,Running,0,,\n", r":2: field 'num_gpu'"),
        ("a,1000,10,2,500,,LS,Running,0,,\n", r":2: field 'gpu_milli': .*sharing needs"),
        ("a,1000,10,1,0,,LS,Running,0,,\n", r"pod 'a' \(row 1\): gpu_milli must be > 0"),
    ],
)
def test_malformed_pod_rows_name_file_line_field_and_reason(tmp_path, body, match):
    p = tmp_path / "pods.csv"
    p.write_text(POD_HEAD + body)
    with pytest.raises(TraceError, match=match) as e:
        read_pods(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize(
    "text,match",
    [
        ("sn,cpu_milli,gpu\n", r"line 1: missing column\(s\) memory_mib, model"),
        (NODE_HEAD, "no rows"),
        (NODE_HEAD + "n0,64000,1024,2,\n", r"line 2: field 'model': empty"),
        (NODE_HEAD + "n0,lots,1024,2,A\n", r"line 2: field 'cpu_milli'"),
    ],
)
def test_malformed_node_lists_are_refused(tmp_path, text, match):
    p = tmp_path / "nodes.csv"
    p.write_text(text)
    with pytest.raises(TraceFileError, match=match):
        read_nodes(p)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TraceFileError, match="cannot open"):
        read_nodes(tmp_path / "nope.csv")


def test_nodes_may_be_a_shipped_pool():
    s = load_nodes("openb")
    assert len(s) == 1213 and s.total_gpu_milli == 6212 * 1000
    assert s.cpu_cap.max() == 128_000
