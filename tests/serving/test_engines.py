"""Engines as data: templates, their validation in services files, device variables, the
command lines docs/serving.md shows, and the metrics adapters."""

import json
import re
from pathlib import Path

import pytest

from computepool.serving.config import read_serving
from computepool.serving.engines import ENGINES, get_engine
from computepool.serving.engines.launch import (
    EngineChoice,
    choice_problem,
    engine_of,
    example_command,
    replica_launch,
    replica_values,
)
from computepool.serving.engines.metrics import LLAMACPP, SGLANG, VLLM, read_load
from computepool.serving.engines.spec import PUBLIC_FIELDS, render, template_problem
from computepool.traces.errors import TraceError

DOCS = Path(__file__).resolve().parents[2] / "docs/serving.md"


def test_docs_show_the_command_lines_the_templates_generate():
    text = DOCS.read_text()
    block = text.split("<!-- engine-commands -->", 1)[1].split("```", 2)[1]
    shown = [ln for ln in block.splitlines() if ln and not ln.startswith(("#", "bash"))]
    want = [
        example_command(
            n, "ASCEND_RT_VISIBLE_DEVICES" if n == "mindie" else "CUDA_VISIBLE_DEVICES"
        )  # fmt: skip
        for n in ENGINES
        if n not in ("emulator", "command")
    ]
    assert shown == want


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["srv", "{prot}"], "unknown placeholder {prot}"),
        (["srv", "{port.__class__}"], "unknown placeholder"),
        (["srv", "{port[0]}"], "unknown placeholder"),
        (["srv", "{port:>8}"], "takes no format"),
        (["srv", "{port!r}"], "takes no format"),
        (["srv", "{port"], "literal brace"),
        (["srv", "a\0b"], "NUL"),
    ],
)
def test_bad_templates_are_named(argv, why):
    assert why in template_problem(argv, PUBLIC_FIELDS)


def test_literal_braces_and_known_placeholders_render():
    argv = ["srv", "--port={port}", '--json={{"tp": {tp}}}']
    assert template_problem(argv, PUBLIC_FIELDS) == ""
    assert render(argv, {"port": 9, "tp": 2}) == ["srv", "--port=9", '--json={"tp": 2}']


@pytest.mark.parametrize(
    ("choice", "field", "why"),
    [
        (EngineChoice("tgi"), "engine", "unknown engine 'tgi'"),
        (EngineChoice("vllm"), "model_path", "needs model_path"),
        (EngineChoice("command"), "command", "needs command"),
        (EngineChoice("command", command=("srv",)), "command", "must listen on {port}"),
        (EngineChoice("vllm", "/m", command=("x",)), "command", "is for engine 'command'"),
        (EngineChoice("vllm", "/m", args=("--x={nope}",)), "engine_args", "{nope}"),
        (EngineChoice("vllm", "/m", ready_path="health"), "ready_path", "starting with '/'"),
        (EngineChoice("vllm", "/m", metrics="tgi"), "metrics", "unknown metrics adapter"),
    ],
)
def test_choice_problems(choice, field, why):
    got_field, got_why = choice_problem(choice)
    assert got_field == field and why in got_why


def _services(tmp_path, body: str) -> Path:
    p = tmp_path / "svc.yaml"
    p.write_text("traffic: {duration_hours: 0.01}\nservices:\n" + body)
    return p


def test_services_file_errors_name_file_line_and_field(tmp_path):
    p = _services(tmp_path, "  - name: a\n    model: qwen2.5-1.5b\n    engine: vllm\n")
    with pytest.raises(TraceError) as exc:
        read_serving(p)
    msg = str(exc.value)
    assert "svc.yaml" in msg and "services[0].model_path" in msg and "needs model_path" in msg
    p = _services(tmp_path, "  - name: a\n    model: qwen2.5-1.5b\n    engine: command\n"
                            "    command: [srv, '--port={port}', '{prot}']\n")  # fmt: skip
    with pytest.raises(TraceError, match=r":6: field .services\[0\]\.command.*unknown placeholder"):
        read_serving(p)
    p = _services(tmp_path, "  - {name: a, model: qwen2.5-1.5b, engine: tgi}\n")
    with pytest.raises(TraceError, match=r"services\[0\]\.engine.*unknown engine 'tgi'"):
        read_serving(p)


def test_services_file_carries_the_engine(tmp_path):
    p = _services(tmp_path, "  - {name: chat, model: qwen2.5-1.5b, engine: sglang,"
                            " model_path: /m/q, engine_args: ['--mem-fraction-static', '0.8']}\n")  # fmt: skip
    svc = read_serving(p).services[0]
    assert svc.engine == EngineChoice("sglang", "/m/q", args=("--mem-fraction-static", "0.8"))
    assert (
        read_serving(_services(tmp_path, "  - {name: c, model: qwen2.5-1.5b}\n")).services[0].engine
        == EngineChoice()
    )


def test_replica_launch_per_vendor_and_mindie_config(tmp_path):
    c = EngineChoice("mindie", "/weights/qwen")
    eng = engine_of(c)
    argv, env = replica_launch(eng, replica_values(c, "chat", 9000, 2), (6, 7),
                               "ASCEND_RT_VISIBLE_DEVICES", tmp_path)  # fmt: skip
    assert argv == ["mindieservice_daemon"]
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == "6,7" and env["CPOOL_VISIBLE_DEVICES"] == "6,7"
    cfg = json.loads(Path(env["MIES_CONFIG_JSON_PATH"]).read_text())
    assert cfg["ServerConfig"]["port"] == 9000 and cfg["ServerConfig"]["metricsPort"] == 9002
    model = cfg["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
    assert model["modelName"] == "chat" and model["worldSize"] == 2
    assert cfg["BackendConfig"]["npuDeviceIds"] == [[0, 1]]
    assert eng.ports == 3 and eng.metrics_port == 2


def test_command_engine_uses_the_services_argv_and_adapter():
    c = EngineChoice("command", "/m", command=("srv", "--port", "{port}", "--tp={tp}"),
                     metrics="sglang", ready_path="/ready")  # fmt: skip
    eng = engine_of(c)
    argv, env = replica_launch(eng, replica_values(c, "x", 8000, 4), (), "MLU_VISIBLE_DEVICES")
    assert argv == ["srv", "--port", "8000", "--tp=4"] and env == {}
    assert eng.metrics is SGLANG and eng.ready_path == "/ready"


def test_every_engine_template_is_valid():
    for e in ENGINES.values():
        assert template_problem(e.argv, (*PUBLIC_FIELDS, *e.fields)) == "", e.name
    with pytest.raises(KeyError, match="unknown engine"):
        get_engine("tgi")


SGLANG_TEXT = """# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="chat"} 3.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="chat"} 5.0
# TYPE sglang:num_requests counter
sglang:num_requests_total{model_name="chat"} 42.0
# TYPE sglang:prompt_tokens counter
sglang:prompt_tokens_total{model_name="chat"} 9000.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="chat"} 0.25
"""
LLAMACPP_TEXT = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 120
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 64
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
"""


def test_adapters_read_each_engines_names():
    s = read_load(SGLANG_TEXT, SGLANG)
    assert (s.running, s.waiting, s.requests_total, s.prompt_tokens_total, s.cache_usage) == (
        3, 5, 42, 9000, 0.25)  # fmt: skip
    ll = read_load(LLAMACPP_TEXT, LLAMACPP)
    assert (ll.running, ll.waiting, ll.prompt_tokens_total, ll.generation_tokens_total) == (
        1, 2, 120, 64)  # fmt: skip
    assert read_load(SGLANG_TEXT, VLLM) is None  # not this engine's names
    assert read_load("garbage {{{ not prometheus\n", VLLM) is None
    assert read_load("x" * (5 << 20), VLLM) is None
    assert re.search("sglang", SGLANG_TEXT)
