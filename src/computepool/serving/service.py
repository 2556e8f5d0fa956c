"""The ``serve`` job kind: a long-running service, and the serving layer's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from computepool.serving.activity import ActivatorBounds
from computepool.serving.engines.launch import EngineChoice
from computepool.serving.models import ModelSpec
from computepool.serving.perf import PerfAssumptions, Profile
from computepool.serving.streams import RequestStream, TrafficSpec

#: The previous period is drawn with the run's seed plus this offset.
PAST_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class ServiceSpec:
    """An LLM endpoint: a model, SLOs, replica bounds and where it may run."""

    name: str
    model: ModelSpec
    #: p99 time to first token and p99 time between tokens, seconds.
    ttft_slo_s: float = 2.0
    tbt_slo_s: float = 0.1
    min_replicas: int = 1
    max_replicas: int = 16
    #: Accelerator types it may use (empty: any); regions it may run in (empty: any).
    accelerators: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    tenant: str = "default"
    #: Which trace its requests come from and its share of that trace (None: Zipf).
    trace: str = "conv"
    share: float | None = None
    profiles: tuple[Profile, ...] = ()
    #: What runs its replicas on the live pool (the simulator does not look at it).
    engine: EngineChoice = field(default_factory=EngineChoice)
    #: On the live pool: stopped after ``idle_s`` without requests (its devices go back to
    #: training), woken by the gateway's activator (None: keeps ``min_replicas``).
    scale_to_zero: ActivatorBounds | None = None

    @property
    def profile_map(self) -> dict[tuple[str, int], Profile]:
        return {(p.accelerator, p.tp): p for p in self.profiles}


@dataclass(frozen=True)
class ServingConfig:
    """How services are run: the autoscaler's knobs and the mechanisms switched on."""

    #: ``pooled`` (autoscaled, packed, on the shared pool) or ``dedicated`` (per-model
    #: replicas sized for the model's peak, whole devices, held for the whole run).
    mode: str = "pooled"
    #: Several models' replicas may share one device (fractional shapes).
    packing: bool = True
    #: Replicas follow the load; off: sized once for the peak (as dedicated).
    autoscale: bool = True
    #: ``price``: cheapest shape for the load; ``first``: first accelerator the service lists.
    flavor_choice: str = "price"
    #: Autoscaler / scheduler round for services, seconds.
    interval_s: float = 30.0
    #: A preempted training job gets this long to checkpoint before the replica starts.
    grace_s: float = 30.0
    #: Prefill utilisation a replica is sized for (headroom for bursts).
    target_utilization: float = 0.6
    #: Load is measured over this window; the peak of the last ``peak_window_s`` is kept.
    window_s: float = 60.0
    #: The rate is the highest over ``burst_window_s`` slices of the window (bursts).
    burst_window_s: float = 10.0
    peak_window_s: float = 120.0
    #: The trend of the last ``window_s`` windows is extrapolated this far ahead.
    forecast_s: float = 60.0
    #: A backlog is to be drained within this many seconds.
    drain_s: float = 30.0
    #: Capacity is released only when not needed for this long.
    scale_down_delay_s: float = 300.0
    #: Resolution of the request replay, seconds.
    bin_s: float = 2.0
    #: Output tokens are spread over this window to get the decode load.
    decode_window_s: float = 15.0
    #: Pooled only: models whose past load is below ``hot_fraction`` of one replica share
    #: replica groups (``serving/mux.py``): weights loaded on demand, evicted after
    #: ``keep_alive_s`` without requests (scale to zero per model).
    multiplex: bool = False
    hot_fraction: float = 0.5
    keep_alive_s: float = 60.0
    #: ``fixed``: ``keep_alive_s`` for every member; ``histogram``: per member, the
    #: ``keep_alive_quantile`` of its idle times that ended within ``keep_alive_window_s``
    #: before each ``keep_alive_epoch_s`` epoch, times 1 + ``keep_alive_margin``; the fixed
    #: value when fewer than ``keep_alive_min_samples`` or beyond ``keep_alive_max_s``
    #: (Shahrad et al., ATC'20; ``serving/keepalive.py``).
    keep_alive_policy: str = "fixed"
    keep_alive_quantile: float = 0.99
    keep_alive_margin: float = 0.1
    keep_alive_max_s: float = 60.0
    keep_alive_min_samples: int = 20
    keep_alive_window_s: float = 14400.0
    keep_alive_epoch_s: float = 900.0
    #: Mux groups: ``muxserve``: a model with a request in the last ``decode_window_s``
    #: keeps its weights on an instance; ``swap`` (simulator only): decode is time-sliced
    #: across models in turns of ``perf.swap_turn_s``, weights swapped in from host memory
    #: per turn (Aegaeon, SOSP'25; ``serving/mux.py``).
    residency: str = "muxserve"
    #: A mux group of smaller instances joins the next larger-instance group of the same
    #: flavor and SLOs when, replayed over the previous period, the two together would hold
    #: fewer devices (``serving/muxmerge.py``; the live pool takes the same groups).
    mux_merge: bool = False
    #: Pooled + autoscaled only: prefill runs in prefill pools shared across models
    #: (``serving/disagg.py``), the services' own replicas (and mux groups) only decode; a
    #: model's weights stay in a prefill pool ``prefill_keep_alive_s`` after its last prompt.
    disaggregate: bool = False
    prefill_keep_alive_s: float = 10.0
    #: Only services whose past prompts would keep this share of one device of the pool's
    #: flavor busy go to a prefill pool (the others prefill where they decode).
    prefill_fraction: float = 0.0
    #: A prefill pool's instances are released when not needed for this long.
    prefill_scale_down_delay_s: float = 60.0
    #: Share of the TTFT SLO a prompt may queue for in the burst term (0: the work arriving
    #: in any TTFT-SLO window is prefilled within that window, as before).
    ttft_queue_share: float = 0.0
    #: Mux groups and prefill pools: ``window`` (the burst rules above) or ``replay``: the
    #: smallest prefill rate at which the prompts of the last ``sizing_lookback_s`` would
    #: have met ``sizing_delay_share`` of the TTFT SLO for ``sizing_quantile`` of them
    #: (``serving/sizing.py``); that rate (plus the backlog drain) is the need, without
    #: the forecast's peak and trend, and is released after ``prefill_scale_down_delay_s``.
    burst_sizing: str = "window"
    sizing_lookback_s: float = 900.0
    sizing_delay_share: float = 0.75
    sizing_quantile: float = 0.995
    sizing_tail_samples: int = 20
    #: > 0: the replayed need is the ``sizing_history_quantile`` of the needs of the last
    #: ``sizing_history_s`` (the first round's history from the previous period).
    sizing_history_s: float = 0.0
    sizing_history_quantile: float = 1.0
    perf: PerfAssumptions = field(default_factory=PerfAssumptions)

    def variant(self, **changes: object) -> ServingConfig:
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServingWorkload:
    """Services with their request streams and the serving settings, as read from a file."""

    services: tuple[ServiceSpec, ...]
    streams: tuple[RequestStream, ...]
    traffic: TrafficSpec
    config: ServingConfig
    source: str = ""
    #: The previous period's request streams (what the operator saw before the run starts):
    #: dedicated sizing, the pooled warm start and the shape choice look only at these.
    #: None: drawn from ``traffic`` with another seed and no load step (``past_streams``).
    past: tuple[RequestStream, ...] | None = None

    @property
    def horizon_s(self) -> float:
        return self.traffic.duration_s

    def past_streams(self, duration_s: float | None = None) -> tuple[RequestStream, ...]:
        """The previous period: ``past`` if given, else the same traffic drawn with an
        independent seed, without the load step (a step is news), over ``duration_s``."""
        if self.past is not None:
            return self.past
        from dataclasses import replace

        from computepool.serving.streams import build_streams

        traffic = replace(
            self.traffic,
            seed=self.traffic.seed + PAST_SEED_OFFSET,
            step=None,
            duration_s=duration_s or self.traffic.duration_s,
        )
        sv = self.services
        streams = build_streams(
            traffic, [s.name for s in sv], [s.trace for s in sv], [s.share for s in sv]
        )
        return tuple(streams)

    def with_config(self, config: ServingConfig) -> ServingWorkload:
        from dataclasses import replace

        return replace(self, config=config)
