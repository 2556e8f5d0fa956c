import pytest

from computepool.placement.openb import TraceFileError, read_nodes, read_pods
from tests.placement.helpers import NODES, PODS

NODE_HEAD = "sn,cpu_milli,memory_mib,gpu,model\n"
POD_HEAD = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\n"


def test_fixture_excerpts_read():
    s = read_nodes(NODES)
    assert len(s) == 40 and s.total_gpu_milli > 0
    pods = read_pods(PODS)
    assert len(pods) == 240
    assert any(r.is_share for r in pods.requests) and any(r.num_gpu == 0 for r in pods.requests)


def test_gpu_spec_is_split_on_bars(tmp_path):
    p = tmp_path / "pods.csv"
    p.write_text(POD_HEAD + "a,1000,10,1,500,V100M16|V100M32,LS\n")
    assert read_pods(p).requests[0].gpu_spec == frozenset({"V100M16", "V100M32"})


@pytest.mark.parametrize(
    "body,match",
    [
        ("a,1000,10,1,abc,,LS\n", r"line 2: field 'gpu_milli': 'abc' is not an integer"),
        ("a,1000,10,-1,0,,LS\n", r"line 2: field 'num_gpu': -1 is negative"),
        ("a,1000,10,2,500,,LS\n", r"line 2: field 'gpu_milli': .*whole devices"),
        ("a,1000,10,0,0,,LS\nb,1000,10,1,1200,,LS\n", r"line 3: field 'gpu_milli'"),
    ],
)
def test_malformed_pod_rows_name_file_line_field_and_reason(tmp_path, body, match):
    p = tmp_path / "pods.csv"
    p.write_text(POD_HEAD + body)
    with pytest.raises(TraceFileError, match=match) as e:
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
