"""What a simulated run reports about its services (the ``services`` list of the JSON)."""

from __future__ import annotations

from typing import Any

import numpy as np

from computepool.serving.controller import ServingController
from computepool.serving.replay import attainment
from computepool.serving.state import ServiceState

H = 3600.0


def _intervals(t: np.ndarray, horizon: float) -> np.ndarray:
    """Duration each record holds for (until the next record, the last until the horizon)."""
    if len(t) == 0:
        return np.zeros(0)
    nxt = np.append(t[1:], max(horizon, t[-1]))
    return np.clip(np.minimum(nxt, horizon) - np.minimum(t, horizon), 0.0, None)


def _p99(x: np.ndarray) -> float | None:
    return float(np.percentile(x, 99)) if len(x) else None


def service_rows(ctl: ServingController) -> list[dict[str, Any]]:
    rec = ctl.record
    t = np.asarray(rec.t)
    dt = _intervals(t, ctl.horizon)
    dev = np.vstack(rec.devices) if rec.devices else np.zeros((0, len(ctl.states)))
    reps = np.vstack(rec.replicas) if rec.replicas else np.zeros((0, len(ctl.states)))
    rows = []
    for k, s in enumerate(ctl.states):
        rows.append(
            _row(s, dev[:, k] if len(dev) else dev, reps[:, k] if len(reps) else reps, t, dt)
        )
    for g, s in zip(rows, ctl.states, strict=True):
        if s.members:
            _share_group(g, s, [rows[i] for i in s.members], [ctl.states[i] for i in s.members])
        if s.prefill_for:
            _share_pool(g, s, [rows[i] for i in s.prefill_for])
    return rows


def _share_pool(row: dict, p: ServiceState, rows: list[dict]) -> None:
    """A prefill pool's row lists its services; each gets the pool's accelerator-hours in
    proportion to the prefill work (loads included) it brought, as ``prefill_accelerator_hours``
    (its ``accelerator_hours`` are its decode side's)."""
    member, _ = p.member_pos
    work = np.bincount(member, weights=p.replay.flops, minlength=len(rows))
    share = work / max(float(work.sum()), 1e-9)
    row["status"] = "prefill pool"
    row["members"] = [r["name"] for r in rows]
    row["cold_starts"] = int(p.replay.cold.sum()) if p.replay.cold is not None else 0
    row["requests"] = int(len(p.replay.stream))
    row["kv_transfer_p99_s"] = _p99(p.transfer) if p.transfer is not None else None
    for r, sh in zip(rows, share, strict=True):
        r["prefilled_by"] = row["name"]
        r["prefill_accelerator_hours"] = row["accelerator_hours"] * float(sh)


def _share_group(row: dict, g: ServiceState, rows: list[dict], members: list[ServiceState]):
    """A mux group's row lists its members; each member is charged the group's
    accelerator-hours in proportion to the prefill work (loads included) it brought (output
    tokens in a decode-only group)."""
    member, _ = g.member_pos
    # a decode-only group (disaggregated: prompts prefilled in a pool) by output tokens
    w = g.replay.flops if g.replay.flops.sum() > 0 else g.replay.stream.output
    work = np.bincount(member, weights=w, minlength=len(members))
    share = work / max(float(work.sum()), 1e-9)
    row["status"] = "group"
    row["members"] = [m.spec.name for m in members]
    row["cold_starts"] = int(g.replay.cold.sum()) if g.replay.cold is not None else 0
    row["requests"] = int(len(g.replay.stream))
    for r, m, sh in zip(rows, members, share, strict=True):
        r["served_by"] = g.spec.name
        r["accelerator_hours"] = row["accelerator_hours"] * float(sh)
        cold = g.replay.cold[member == members.index(m)] if g.replay.cold is not None else []
        r["cold_starts"] = int(np.sum(cold))


def _row(s: ServiceState, dev: np.ndarray, reps: np.ndarray, t: np.ndarray, dt: np.ndarray):
    sp, rp = s.spec, s.replay
    base = {
        "name": sp.name,
        "model": sp.model.name,
        "trace": sp.trace,
        "requests": int(len(rp.stream)),
    }
    if not s.status.ok:
        return {
            **base,
            "status": "rejected",
            "reason": s.status.reason,
            "slo_attainment": 0.0,
            "accelerator_hours": 0.0,
        }
    ok = attainment(rp.ttft, rp.tbt, sp.ttft_slo_s, sp.tbt_slo_s)
    ttft = rp.ttft[np.isfinite(rp.ttft)]
    tbt = rp.tbt[np.isfinite(rp.tbt)]
    change = np.r_[True, np.diff(reps) != 0] if len(reps) else np.zeros(0, dtype=bool)
    return {
        **base,
        "status": "ok",
        "slo_attainment": float(ok.mean()) if len(ok) else 1.0,
        "ttft_attainment": float(np.mean(rp.ttft <= sp.ttft_slo_s)) if len(ok) else 1.0,
        "tbt_attainment": float(np.mean(rp.tbt <= sp.tbt_slo_s)) if len(ok) else 1.0,
        "ttft_p99_s": _p99(rp.ttft) if np.isfinite(rp.ttft).all() else float("inf"),
        "ttft_p50_s": float(np.median(ttft)) if len(ttft) else None,
        "tbt_p99_s": _p99(rp.tbt) if np.isfinite(rp.tbt).all() else float("inf"),
        "tbt_p50_s": float(np.median(tbt)) if len(tbt) else None,
        "slo": {"ttft_p99_s": sp.ttft_slo_s, "tbt_p99_s": sp.tbt_slo_s},
        "accelerator_hours": float((dev * dt).sum() / H),
        "replicas_max": int(reps.max()) if len(reps) else 0,
        "replicas_mean": float((reps * dt).sum() / dt.sum()) if dt.sum() > 0 else 0.0,
        "replicas_timeline": {
            "t_s": t[change].tolist(),
            "replicas": reps[change].astype(int).tolist(),
        },
        "max_replicas": sp.max_replicas,
        "preemptions_caused": s.preemptions,
        "rounds_capped": s.capped,
        "accelerator_hours_by_shape": {
            s.shapes.names[k]: v / H for k, v in sorted(s.shape_seconds.items()) if v > 0
        },
    }


def serving_summary(
    ctl: ServingController, busy_train: np.ndarray, t0: np.ndarray, t1: np.ndarray
) -> dict[str, Any]:
    """Totals: accelerator-hours held (packing slack included), peak accelerators held, and the
    pool's utilisation over the services' horizon (training busy + services held)."""
    rec = ctl.record
    t = np.asarray(rec.t)
    dt = _intervals(t, ctl.horizon)
    held = np.vstack(rec.held) if rec.held else np.zeros((0, len(ctl.capacity)))
    dev = np.vstack(rec.devices) if rec.devices else np.zeros((0, len(ctl.states)))
    held_total = held.sum(axis=1) if len(held) else np.zeros(0)
    horizon = ctl.horizon
    cap = float(ctl.capacity.sum())
    # training accelerator-seconds inside the horizon (busy is spread evenly over each interval)
    if len(t0):
        frac = np.clip((np.minimum(t1, horizon) - t0) / np.maximum(t1 - t0, 1e-12), 0, 1)
        train_in = float((busy_train.sum(axis=1) * frac).sum())
    else:
        train_in = 0.0
    serve_in = float((held_total * dt).sum())
    start = float(t[0]) if len(t) else 0.0
    span = max(horizon - start, 1e-9)
    rejected = [s.spec.name for s in ctl.states if not s.status.ok]
    att = [r for r in service_rows(ctl) if r["status"] == "ok"]
    req = np.array([r["requests"] for r in att], dtype=float)
    sat = np.array([r["slo_attainment"] for r in att])
    return {
        "mode": ctl.cfg.mode,
        "packing": ctl.cfg.packing and ctl.cfg.mode == "pooled",
        "autoscale": ctl.cfg.autoscale and ctl.cfg.mode == "pooled",
        "flavor_choice": ctl.cfg.flavor_choice,
        "horizon_hours": horizon / H,
        "services": len(ctl.states),
        "services_rejected": rejected,
        "requests": int(req.sum()),
        "slo_attainment": float((sat * req).sum() / req.sum()) if req.sum() > 0 else 1.0,
        "slo_attainment_min_service": float(sat.min()) if len(sat) else 1.0,
        "accelerator_hours": serve_in / H,
        "accelerator_hours_by_service": float((dev * dt[:, None]).sum() / H) if len(dev) else 0.0,
        "peak_accelerators": float(held_total.max()) if len(held_total) else 0.0,
        "mean_accelerators": serve_in / span,
        "cost_usd": float((held * dt[:, None] * ctl.pool.flavor_price[None, :]).sum() / H)
        if len(held)
        else 0.0,
        "held_by_flavor_hours": {
            f.name: float(v)
            for f, v in zip(ctl.pool.flavors, (held * dt[:, None]).sum(axis=0) / H, strict=True)
            if v > 0
        }
        if len(held)
        else {},
        "pool_utilization": (train_in + serve_in) / (cap * span) if cap > 0 else 0.0,
        "training_utilization": train_in / (cap * span) if cap > 0 else 0.0,
        "preemptions_for_services": int(sum(s.preemptions for s in ctl.states)),
    }
