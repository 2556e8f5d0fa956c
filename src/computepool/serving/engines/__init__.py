"""The inference engines a service may name (``engine:`` in a services file).

``emulator`` (default; no model, timing from the performance model), ``vllm``, ``sglang``,
``mindie`` (Ascend), ``llama.cpp`` (``llama-server``), ``llama-cpp-python`` (the PyPI
package's OpenAI server, with the pool's metrics added) and ``command`` (any
OpenAI-compatible server: the service gives the argv). ``launch.py`` turns one into the
argv and environment of a replica; ``docs/serving.md`` shows the command lines (a test checks
them against these templates).
"""

from __future__ import annotations

from computepool.serving.engines.metrics import LLAMACPP, MINDIE, SGLANG, VLLM
from computepool.serving.engines.mindie import mindie_config
from computepool.serving.engines.spec import Engine

EMULATOR = Engine(
    "emulator",
    ("{python}", "-m", "computepool.serving.replica", "--model", "{model}",
     "--accelerator", "{accelerator}", "--tp", "{tp}", "--frac", "{frac}",
     "--tbt-slo", "{tbt_slo}", "--host", "{host}", "--port", "{port}",
     "--served-model-name", "{name}"),
    metrics=VLLM,
    needs_model_path=False,
    fields=("model", "accelerator", "frac", "tbt_slo"),
    memory_args=("--gpu-memory-utilization", "{memory_fraction}"),
    doc="EMULATED replica: vLLM's API and metrics, token timing from the performance model",
)  # fmt: skip
ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        EMULATOR,
        Engine(
            "vllm",
            (
                "vllm",
                "serve",
                "{model_path}",
                "--served-model-name",
                "{name}",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--tensor-parallel-size",
                "{tp}",
            ),
            metrics=VLLM,
            memory_args=("--gpu-memory-utilization", "{memory_fraction}"),
            doc="vLLM's OpenAI server (NVIDIA; Ascend through vllm-ascend)",
        ),  # fmt: skip
        Engine(
            "sglang",
            (
                "{python}",
                "-m",
                "sglang.launch_server",
                "--model-path",
                "{model_path}",
                "--served-model-name",
                "{name}",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--tp-size",
                "{tp}",
                "--enable-metrics",
            ),
            metrics=SGLANG,
            memory_args=("--mem-fraction-static", "{memory_fraction}"),
            doc="SGLang's server with its Prometheus metrics on",
        ),  # fmt: skip
        Engine(
            "mindie",
            ("mindieservice_daemon",),
            ready_path="/v2/health/ready",
            metrics=MINDIE,
            metrics_port=2,
            ports=3,
            fields=("config",),
            env=(("MIES_CONFIG_JSON_PATH", "{config}"), ("MIES_SERVICE_MONITOR_MODE", "1")),
            config=mindie_config,
            doc="Huawei MindIE Service (Ascend): configured by a config.json the pool writes",
        ),
        Engine(
            "llama.cpp",
            (
                "llama-server",
                "--model",
                "{model_path}",
                "--alias",
                "{name}",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--metrics",
            ),
            metrics=LLAMACPP,
            doc="llama.cpp's llama-server with --metrics",
        ),  # fmt: skip
        Engine(
            "llama-cpp-python",
            (
                "{python}",
                "-m",
                "computepool.serving.engines.llama_cpp_python",
                "--model",
                "{model_path}",
                "--model_alias",
                "{name}",
                "--host",
                "{host}",
                "--port",
                "{port}",
            ),
            ready_path="/v1/models",
            metrics=VLLM,
            doc="llama-cpp-python's OpenAI server (PyPI), with vLLM-named metrics the pool adds",
        ),  # fmt: skip
        Engine(
            "command",
            (),
            ready_path="/v1/models",
            doc="any OpenAI-compatible server: the service's own `command:` argv",
        ),
    )
}


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


__all__ = ["ENGINES", "Engine", "get_engine"]
