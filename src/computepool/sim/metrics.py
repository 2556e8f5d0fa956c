"""Simulation results and the metrics computed from them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from computepool.model.status import Status
from computepool.scheduler.loop import RoundSeries


@dataclass
class SimResult:
    pool: str
    policy: str
    workload: str
    flavors: list[str]
    capacity: np.ndarray
    arrival: np.ndarray
    first_start: np.ndarray
    end: np.ndarray
    accel_seconds: np.ndarray
    cost_usd: np.ndarray
    energy_kwh: np.ndarray
    carbon_kg: np.ndarray
    preemptions: np.ndarray
    isolated_seconds: np.ndarray
    series: RoundSeries
    rejected: dict[int, Status] = field(default_factory=dict)
    window: tuple[int, int] | None = None
    wall_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: The ``ServingController`` of a run with services (records for plots), else None.
    serving: Any = None

    # ---- derived -------------------------------------------------------------------
    @property
    def jct(self) -> np.ndarray:
        return self.end - self.arrival

    def window_slice(self) -> slice:
        if self.window is None:
            return slice(0, len(self.arrival))
        return slice(self.window[0], min(self.window[1], len(self.arrival)))

    def series_arrays(self) -> dict[str, np.ndarray]:
        s = self.series
        F = len(self.flavors)
        out = {
            "t0": np.asarray(s.t0),
            "t1": np.asarray(s.t1),
            "busy": np.vstack(s.busy) if s.busy else np.zeros((0, F)),
            "queued": np.asarray(s.queued),
            "active": np.asarray(s.active),
        }
        if s.serving:
            # accelerators held by services count as busy (they are allocated, as jobs are)
            out["busy"] = out["busy"] + np.vstack(s.serving)
        return out

    def utilization(self) -> tuple[dict[str, float], float]:
        ser = self.series_arrays()
        if len(ser["t0"]) == 0:
            return {f: 0.0 for f in self.flavors}, 0.0
        span = float(ser["t1"][-1] - ser["t0"][0])
        busy = ser["busy"].sum(axis=0)
        cap = self.capacity.astype(float)
        per = {
            f: float(busy[i] / (cap[i] * span)) if span > 0 and cap[i] > 0 else 0.0
            for i, f in enumerate(self.flavors)
        }
        overall = float(busy.sum() / (cap.sum() * span)) if span > 0 else 0.0
        return per, overall

    def utilization_timeline(self, bucket_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(bucket start times, utilisation[T, F]), busy time spread over buckets by overlap."""
        ser = self.series_arrays()
        if len(ser["t0"]) == 0:
            return np.zeros(0), np.zeros((0, len(self.flavors)))
        t0, t1, busy = ser["t0"], ser["t1"], ser["busy"]
        start, stop = float(t0[0]), float(t1[-1])
        bucket_s = bucket_s or max((stop - start) / 200.0, 1.0)
        edges = np.arange(start, stop + bucket_s, bucket_s)
        # cumulative busy accelerator-seconds is linear inside each (contiguous) interval
        times = np.concatenate([[t0[0]], t1])
        cum = np.vstack([np.zeros(len(self.flavors)), np.cumsum(busy, axis=0)])
        at = np.column_stack([np.interp(edges, times, cum[:, k]) for k in range(cum.shape[1])])
        util = np.diff(at, axis=0) / (self.capacity[None, :].astype(float) * bucket_s)
        return edges[:-1], np.clip(util, 0.0, 1.0)

    def summary(self) -> dict[str, Any]:
        sl = self.window_slice()
        jct = self.jct[sl]
        done = ~np.isnan(jct)
        j = jct[done]
        rho = (self.jct / self.isolated_seconds)[sl][done]
        qd = (self.first_start - self.arrival)[sl]
        qd = qd[~np.isnan(qd)]
        per, overall = self.utilization()
        all_end = self.end[~np.isnan(self.end)]
        makespan = (float(all_end.max()) - float(self.arrival.min())) if len(all_end) else 0.0
        rounds = self.series.rounds
        h = 3600.0
        return {
            "pool": self.pool,
            "policy": self.policy,
            "workload": self.workload,
            "window": list(self.window) if self.window else None,
            "jobs_total": int(len(self.arrival)),
            "jobs_in_window": int(sl.stop - sl.start),
            "jobs_completed": int(done.sum()),
            "jobs_rejected": len(self.rejected),
            "avg_jct_hours": float(j.mean() / h) if len(j) else None,
            "p50_jct_hours": float(np.percentile(j, 50) / h) if len(j) else None,
            "p99_jct_hours": float(np.percentile(j, 99) / h) if len(j) else None,
            "makespan_hours": makespan / h,
            "mean_ftf_rho": float(np.mean(rho)) if len(rho) else None,
            "mean_queueing_delay_hours": float(qd.mean() / h) if len(qd) else None,
            "utilization": per,
            "utilization_overall": overall,
            "accelerator_hours": float(np.nansum(self.accel_seconds) / h),
            "energy_mwh": float(np.nansum(self.energy_kwh) / 1000.0),
            "cost_usd": float(np.nansum(self.cost_usd)),
            "carbon_t": float(np.nansum(self.carbon_kg) / 1000.0),
            "preemptions": int(self.preemptions.sum()),
            "rounds": rounds,
            "policy_calls": self.series.policy_calls,
            **policy_time_summary(self.series.policy_seconds),
            "wall_seconds": self.wall_seconds,
            "rounds_per_second": rounds / self.wall_seconds if self.wall_seconds > 0 else None,
            "peak_rss_mib": self.peak_rss_mib,
            "config": self.config,
            **self.extra,
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.summary(), indent=2, default=_jsonable) + "\n")


def policy_time_summary(seconds: list[float]) -> dict[str, float | None]:
    """Per-call policy (LP) wall time: total, mean, median, p99 and max seconds."""
    if not seconds:
        return {
            k: None
            for k in (
                "policy_s_total",
                "policy_s_mean",
                "policy_s_p50",
                "policy_s_p99",
                "policy_s_max",
            )
        }
    x = np.asarray(seconds)
    return {
        "policy_s_total": float(x.sum()),
        "policy_s_mean": float(x.mean()),
        "policy_s_p50": float(np.percentile(x, 50)),
        "policy_s_p99": float(np.percentile(x, 99)),
        "policy_s_max": float(x.max()),
    }


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def isolated_seconds(
    total_steps: np.ndarray,
    job_class: np.ndarray,
    class_rates: np.ndarray,
    capacity: np.ndarray,
    scale_factor: np.ndarray,
    contention: np.ndarray,
) -> np.ndarray:
    """Run time on an equal 1/N share of the pool (N = jobs contending on average).

    The share of each feasible flavor is capacity / (N x scale_factor) of wall-clock time,
    scaled down so the shares sum to at most 1 (finish-time fairness, Themis / Gavel).
    """
    feas = class_rates > 0
    s1 = (class_rates * capacity[None, :]).sum(axis=1)[job_class]
    s0 = (feas * capacity[None, :]).sum(axis=1)[job_class].astype(float)
    k = 1.0 / (np.maximum(contention, 1.0) * scale_factor)
    rate = np.where(k * s0 <= 1.0, k * s1, s1 / np.maximum(s0, 1e-12))
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, total_steps / rate, np.inf)


def contention_per_job(arrival: np.ndarray, end: np.ndarray, series: RoundSeries) -> np.ndarray:
    """Time-averaged number of active jobs over each job's lifetime."""
    t0 = np.asarray(series.t0)
    if len(t0) == 0:
        return np.ones(len(arrival))
    t1 = np.asarray(series.t1)
    act = np.asarray(series.active, dtype=float)
    cum = np.concatenate([[0.0], np.cumsum(act * (t1 - t0))])
    times = np.concatenate([[t0[0]], t1])
    stop = np.where(np.isnan(end), times[-1], end)
    a = np.interp(arrival, times, cum)
    b = np.interp(stop, times, cum)
    dur = np.maximum(stop - arrival, 1e-9)
    return np.maximum((b - a) / dur, 1.0)
