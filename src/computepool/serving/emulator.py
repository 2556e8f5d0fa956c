"""An EMULATED LLM replica: token timing from the performance model, no model, runs on a CPU.

It is not an inference engine. It does what a continuous-batching engine with chunked prefill
would do *in time*: every step decodes one token for each running sequence and spends what is
left of the TBT budget prefilling the head of the queue; a step lasts
``a + B * (ctx * kvr + c) + prefill FLOPs / F`` seconds (``perf.py``), slept with asyncio.
The engine takes token counts; ``http.replica_app`` puts vLLM's OpenAI API in front of it
(``openai_api.py`` counts a prompt's tokens from its text). It reports its load on
``/metrics`` under vLLM's own Prometheus names (``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``vllm:time_to_first_token_seconds``, ...), so the live
autoscaler reads an emulated replica exactly as it reads ``vllm serve``, on 127.0.0.1 without
accelerators.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from computepool.catalog.accelerators import load_accelerators
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.serving.models import ModelSpec, model_fields
from computepool.serving.perf import PerfAssumptions, Profile, build_shapes, prefill_flops


@dataclass(frozen=True)
class ReplicaTiming:
    """The per-step constants of one replica shape (from ``perf.build_shapes``)."""

    label: str
    flops: float  # prefill FLOP/s
    a: float  # s per step
    kvr: float  # s per (sequence x resident token)
    c: float  # s per sequence
    kv_cap: float  # tokens
    start_s: float  # modelled start-up (weights load)
    budget_s: float  # step budget (tbt_budget x TBT SLO)
    model: ModelSpec


def replica_timing(
    model: str,
    accelerator: str,
    tp: int = 1,
    frac: float = 1.0,
    tbt_slo_s: float = 0.1,
    perf: PerfAssumptions | None = None,
    profiles: Mapping[tuple[str, int], Profile] | None = None,
) -> ReplicaTiming:
    """The step constants of ``model`` on ``tp`` x ``accelerator`` (a ``frac`` of one), from
    the performance model or the service's measured ``profiles``."""
    perf = perf or PerfAssumptions()
    m = ModelSpec(name=model, **model_fields(model))
    accels = load_accelerators()
    if accelerator not in accels:
        raise KeyError(f"unknown accelerator {accelerator!r}")
    pool = Pool(
        "emulator",
        {accelerator: accels[accelerator]},
        {"local": Region("local", "XX", 0.1, 1.2, 0.0)},
        (Node("local-0", "local", accelerator, max(tp, 1)),),
    )
    shapes = build_shapes(m, pool, perf=perf, packing=frac < 1.0, profiles=profiles)
    hit = [i for i in range(len(shapes)) if shapes.tp[i] == tp and shapes.frac[i] == frac]
    if not hit:
        raise ValueError(f"{model} does not fit {tp} x {accelerator} (fraction {frac})")
    i = hit[0]
    return ReplicaTiming(
        shapes.names[i],
        float(shapes.flops[i]),
        float(shapes.a[i]),
        float(shapes.kvr[i]),
        float(shapes.c[i]),
        float(shapes.kv_cap[i]),
        float(shapes.start_s[i]),
        perf.tbt_budget * tbt_slo_s,
        m,
    )


def with_memory_fraction(
    t: ReplicaTiming, fraction: float, memory_gib: float, tp: int
) -> ReplicaTiming:
    """The replica's KV cache within ``fraction`` of its devices' memory (vLLM's
    ``--gpu-memory-utilization``: weights + KV cache of this process), or ValueError when the
    weights leave no room for any KV cache (vLLM refuses to start then too)."""
    from dataclasses import replace

    budget = fraction * memory_gib * 1e9 * max(tp, 1)
    room = budget - t.model.weight_bytes
    if room <= 0:
        raise ValueError(
            f"{t.model.name}: {t.model.weight_bytes / 1e9:.2f} GB of weights do not fit "
            f"--gpu-memory-utilization {fraction:g} of {max(tp, 1)} x {memory_gib:g} GiB"
        )
    return replace(t, kv_cap=min(t.kv_cap, room / t.model.kv_bytes_per_token))


@dataclass
class _Seq:
    prompt: int
    max_tokens: int
    work: float  # prefill FLOPs left
    queue: asyncio.Queue
    arrived: float = 0.0
    produced: int = 0


#: vLLM's buckets of ``vllm:time_to_first_token_seconds``.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip


@dataclass
class EngineStats:
    requests_total: int = 0  # arrived
    completed_total: int = 0
    prompt_tokens_total: int = 0  # prefilled (vLLM counts them when the prefill is done)
    generated_tokens_total: int = 0
    steps_total: int = 0
    busy_seconds: float = 0.0
    waiting: int = 0
    running: int = 0
    kv_usage: float = 0.0  # resident tokens / KV capacity
    ttft_sum: float = 0.0
    #: first-token times per bucket of ``TTFT_BUCKETS`` (the last: above the largest)
    ttft_counts: list[int] = field(default_factory=lambda: [0] * (len(TTFT_BUCKETS) + 1))

    def first_token(self, seconds: float) -> None:
        self.ttft_sum += seconds
        self.ttft_counts[bisect.bisect_left(TTFT_BUCKETS, seconds)] += 1


@dataclass
class EmulatedEngine:
    timing: ReplicaTiming
    prefill_floor: float = 0.05
    stats: EngineStats = field(default_factory=EngineStats)
    _waiting: deque = field(default_factory=deque)
    _running: list = field(default_factory=list)
    _wake: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def generate(self, prompt_tokens: int, max_tokens: int) -> AsyncIterator[int]:
        """Yield the index of each generated token when the emulated engine produces it."""
        q: asyncio.Queue = asyncio.Queue()
        work = float(prefill_flops(self.timing.model, [max(prompt_tokens, 1)])[0])
        self._waiting.append(_Seq(prompt_tokens, max(max_tokens, 1), work, q, time.monotonic()))
        self.stats.requests_total += 1
        self.stats.waiting = len(self._waiting)
        self._event().set()
        while True:
            i = await q.get()
            if i is None:
                return
            yield i

    def _step(self) -> float:
        """Plan one step; return its duration (the caller sleeps, then calls ``_finish``)."""
        t = self.timing
        run = self._running
        ctx = sum(s.prompt + s.produced for s in run)
        base = t.a + len(run) * t.c + ctx * t.kvr if run or self._waiting else 0.0
        room = max(t.budget_s - base, self.prefill_floor * t.budget_s) * t.flops
        self._chunk: list[tuple[_Seq, float]] = []
        for s in self._waiting:
            if room <= 0:
                break
            used = min(room, s.work)
            self._chunk.append((s, used))
            room -= used
        return base + sum(u for _, u in self._chunk) / t.flops

    def _finish(self) -> None:
        st = self.stats
        done = []
        for s in self._running:
            s.queue.put_nowait(s.produced)
            s.produced += 1
            st.generated_tokens_total += 1
            if s.produced >= s.max_tokens:
                done.append(s)
        for s in done:
            self._running.remove(s)
            s.queue.put_nowait(None)
            st.completed_total += 1
        for s, used in self._chunk:
            s.work -= used
            if s.work <= 1e-6:
                self._waiting.remove(s)
                s.queue.put_nowait(0)  # the first token comes with the end of prefill
                s.produced = 1
                st.generated_tokens_total += 1
                st.prompt_tokens_total += s.prompt
                st.first_token(time.monotonic() - s.arrived)
                if s.max_tokens <= 1:
                    s.queue.put_nowait(None)
                    st.completed_total += 1
                else:
                    self._running.append(s)
        st.waiting, st.running = len(self._waiting), len(self._running)
        resident = sum(s.prompt + s.produced for s in self._running)
        st.kv_usage = min(resident / max(self.timing.kv_cap, 1.0), 1.0)

    async def run(self) -> None:
        """The engine loop (run it as a task for the life of the replica)."""
        while True:
            if not self._waiting and not self._running:
                ev = self._event()
                ev.clear()
                await ev.wait()
            dt = self._step()
            t0 = time.perf_counter()
            await asyncio.sleep(dt)
            self.stats.busy_seconds += time.perf_counter() - t0
            self.stats.steps_total += 1
            self._finish()


def _families(st: EngineStats, model_name: str) -> list:
    lab = ["model_name"]
    val = [model_name]

    def gauge(name: str, doc: str, v: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=lab)
        g.add_metric(val, v)
        return g

    def counter(name: str, doc: str, v: float, extra: dict | None = None) -> CounterMetricFamily:
        c = CounterMetricFamily(name, doc, labels=[*lab, *(extra or {})])
        c.add_metric([*val, *(extra or {}).values()], v)
        return c

    ttft = HistogramMetricFamily(
        "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
        labels=lab,
    )  # fmt: skip
    cum, buckets = 0, []
    for le, n in zip((*TTFT_BUCKETS, float("inf")), st.ttft_counts, strict=True):
        cum += n
        buckets.append(("+Inf" if le == float("inf") else str(le), cum))
    ttft.add_metric(val, buckets, st.ttft_sum)
    return [
        gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
              st.running),
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
              st.waiting),
        gauge("vllm:gpu_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
              st.kv_usage),
        gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
              st.kv_usage),
        counter("vllm:prompt_tokens", "Number of prefill tokens processed.",
                st.prompt_tokens_total),
        counter("vllm:generation_tokens", "Number of generation tokens processed.",
                st.generated_tokens_total),
        counter("vllm:request_success", "Count of successfully processed requests.",
                st.completed_total, {"finished_reason": "length"}),
        ttft,
    ]  # fmt: skip


def metrics_text(st: EngineStats, model_name: str) -> str:
    """Prometheus exposition of the engine's load under vLLM's metric names."""
    fams = _families(st, model_name)

    class _Collector:
        def collect(self):  # noqa: ANN202 - prometheus_client's collector protocol
            return iter(fams)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector())
    return generate_latest(reg).decode()
