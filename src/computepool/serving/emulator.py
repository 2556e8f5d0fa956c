"""An EMULATED LLM replica: token timing from the performance model, no model, runs on a CPU.

It is not an inference engine. It does what a continuous-batching engine with chunked prefill
would do *in time*: every step decodes one token for each running sequence and spends what is
left of the TBT budget prefilling the head of the queue; a step lasts
``a + B * (ctx * kvr + c) + prefill FLOPs / F`` seconds (``perf.py``), slept with asyncio.
Requests carry token counts, not text. It reports load on ``/metrics`` (Prometheus text:
requests, queue depth, running sequences, tokens) like a real engine would, so the live
autoscaler and the load generator can be exercised on 127.0.0.1 without accelerators.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from computepool.catalog.accelerators import load_accelerators
from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from computepool.serving.models import ModelSpec, model_fields
from computepool.serving.perf import PerfAssumptions, build_shapes, prefill_flops


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
) -> ReplicaTiming:
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
    shapes = build_shapes(m, pool, perf=perf, packing=frac < 1.0)
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


@dataclass
class _Seq:
    prompt: int
    max_tokens: int
    work: float  # prefill FLOPs left
    queue: asyncio.Queue
    produced: int = 0


@dataclass
class EngineStats:
    requests_total: int = 0
    completed_total: int = 0
    prompt_tokens_total: int = 0
    generated_tokens_total: int = 0
    steps_total: int = 0
    busy_seconds: float = 0.0
    waiting: int = 0
    running: int = 0


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
        self._waiting.append(_Seq(prompt_tokens, max(max_tokens, 1), work, q))
        self.stats.requests_total += 1
        self.stats.prompt_tokens_total += prompt_tokens
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
                if s.max_tokens <= 1:
                    s.queue.put_nowait(None)
                    st.completed_total += 1
                else:
                    self._running.append(s)
        st.waiting, st.running = len(self._waiting), len(self._running)

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


def metrics_text(st: EngineStats, label: str) -> str:
    """Prometheus exposition of the engine's load (what the live autoscaler scrapes)."""
    lab = f'{{replica="{label}"}}'
    rows = [
        ("cpool_replica_requests_total", "counter", st.requests_total),
        ("cpool_replica_completed_total", "counter", st.completed_total),
        ("cpool_replica_prompt_tokens_total", "counter", st.prompt_tokens_total),
        ("cpool_replica_generated_tokens_total", "counter", st.generated_tokens_total),
        ("cpool_replica_busy_seconds_total", "counter", st.busy_seconds),
        ("cpool_replica_queue_depth", "gauge", st.waiting),
        ("cpool_replica_running", "gauge", st.running),
    ]
    out = []
    for name, kind, v in rows:
        out += [f"# TYPE {name} {kind}", f"{name}{lab} {v}"]
    return "\n".join(out) + "\n"


def parse_metrics(text: str) -> dict[str, float]:
    """``{metric name: value}`` from Prometheus text (labels dropped; last sample wins)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name.split("{", 1)[0]] = float(value)
    return out
