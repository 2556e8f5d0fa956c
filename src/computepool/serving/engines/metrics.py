"""Metrics adapters: an engine's own Prometheus names -> the load the live autoscaler reads.

Each engine publishes its load under its own names (vLLM ``vllm:num_requests_waiting``,
SGLang ``sglang:num_queue_reqs``, llama.cpp's server ``llamacpp:requests_deferred``, ...).
A ``MetricNames`` maps them onto one ``Load``; ``read_load`` parses a scrape with
prometheus_client's parser. A counter of arrived requests is what the autoscaler wants; an
engine without one gets it as finished + running + waiting (requests that ever arrived and
were not dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

#: A scrape larger than this is not parsed (an engine's, or a tenant's server's, answer).
MAX_SCRAPE_BYTES = 4 << 20


@dataclass(frozen=True)
class MetricNames:
    """Sample names (as exposed, ``_total`` included) of one engine's load."""

    running: str
    waiting: str
    prompt_tokens: str
    generation_tokens: str
    finished: str = ""  # counter of finished requests
    arrived: str = ""  # counter of received requests, when the engine has one
    ttft: str = ""  # histogram base name (``_sum`` / ``_count`` are read)
    cache_usage: tuple[str, ...] = ()  # first one present wins (0..1)


VLLM = MetricNames(
    running="vllm:num_requests_running",
    waiting="vllm:num_requests_waiting",
    prompt_tokens="vllm:prompt_tokens_total",
    generation_tokens="vllm:generation_tokens_total",
    finished="vllm:request_success_total",
    ttft="vllm:time_to_first_token_seconds",
    cache_usage=("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
)
SGLANG = MetricNames(
    running="sglang:num_running_reqs",
    waiting="sglang:num_queue_reqs",
    prompt_tokens="sglang:prompt_tokens_total",
    generation_tokens="sglang:generation_tokens_total",
    arrived="sglang:num_requests_total",
    ttft="sglang:time_to_first_token_seconds",
    cache_usage=("sglang:token_usage",),
)
#: llama.cpp's ``llama-server --metrics``: it counts tokens but not requests; requests in
#: flight are ``requests_processing`` (slots busy) and ``requests_deferred`` (waiting).
LLAMACPP = MetricNames(
    running="llamacpp:requests_processing",
    waiting="llamacpp:requests_deferred",
    prompt_tokens="llamacpp:prompt_tokens_total",
    generation_tokens="llamacpp:tokens_predicted_total",
    cache_usage=("llamacpp:kv_cache_usage_ratio",),
)
#: MindIE Service's Prometheus interface (vLLM's names without the ``vllm:`` prefix).
MINDIE = MetricNames(
    running="num_requests_running",
    waiting="num_requests_waiting",
    prompt_tokens="prompt_tokens_total",
    generation_tokens="generation_tokens_total",
    finished="request_success_total",
    arrived="request_received_total",
    ttft="time_to_first_token_seconds",
    cache_usage=("npu_cache_usage_perc",),
)
ADAPTERS = {"vllm": VLLM, "sglang": SGLANG, "llama.cpp": LLAMACPP, "mindie": MINDIE}


@dataclass(frozen=True)
class Load:
    """One replica's load at one scrape."""

    requests_total: float  # arrived so far (see the module doc)
    prompt_tokens_total: float
    generation_tokens_total: float
    running: float
    waiting: float
    ttft_sum: float = 0.0
    ttft_count: float = 0.0
    cache_usage: float = 0.0


def samples(text: str) -> dict[str, float]:
    """``{sample name: value}``, summed over label sets (several engines or finish reasons);
    histogram buckets dropped. Unparseable or oversized text reads as no samples."""
    out: dict[str, float] = {}
    if len(text) > MAX_SCRAPE_BYTES:
        return out
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if not s.name.endswith("_bucket"):
                    out[s.name] = out.get(s.name, 0.0) + float(s.value)
    except (ValueError, TypeError, IndexError):
        return {}
    return out


def read_load(text: str, names: MetricNames) -> Load | None:
    """The load in one scrape; None when it has none of the engine's names."""
    m = samples(text)
    if names.running not in m and names.waiting not in m:
        return None
    running, waiting = m.get(names.running, 0.0), m.get(names.waiting, 0.0)
    if names.arrived and names.arrived in m:
        arrived = m[names.arrived]
    else:
        arrived = m.get(names.finished, 0.0) + running + waiting if names.finished else 0.0
    cache = next((m[c] for c in names.cache_usage if c in m), 0.0)
    return Load(
        requests_total=arrived,
        prompt_tokens_total=m.get(names.prompt_tokens, 0.0),
        generation_tokens_total=m.get(names.generation_tokens, 0.0),
        running=running,
        waiting=waiting,
        ttft_sum=m.get(f"{names.ttft}_sum", 0.0) if names.ttft else 0.0,
        ttft_count=m.get(f"{names.ttft}_count", 0.0) if names.ttft else 0.0,
        cache_usage=cache,
    )
