"""``cpool pack``: the FGD packing experiment on a node list and a pod list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from computepool.cli.common import console, fail, load_or_exit, progress_bar
from computepool.cli.conventions import alias


def parse_seeds(text: str) -> list[int]:
    """``42-51``, ``42,45,47`` or ``42`` -> list of seeds; ValueError says what is wrong."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(
                f"--seeds {text!r}: {part!r} is not an integer or a range like 42-51"
            ) from None
        if a < 0 or b < a:
            raise ValueError(f"--seeds {text!r}: range {part!r} must be A-B with 0 <= A <= B")
        seeds.extend(range(a, b + 1))
    if not seeds:
        raise ValueError(f"--seeds {text!r}: no seeds")
    return seeds


def summarise(runs: list, top: int) -> dict[str, object]:
    alloc = np.array([r.discretise(r.allocated, top) for r in runs])
    frag = np.array([r.discretise(r.fragmented, top) for r in runs])
    dt = np.concatenate([r.decision_s for r in runs])
    dc = np.concatenate([r.decision_cpu_s for r in runs])
    at = {k: float(np.nanmean(frag[:, k])) for k in (50, 70, 90) if k <= top}
    return {
        "policy": runs[0].policy,
        "tune": runs[0].tune,
        "seeds": [r.seed for r in runs],
        "allocated_at_top": float(np.nanmean(alloc[:, top])),
        "fragmented_at": at,
        "decision_ms_p50": float(np.median(dt) * 1e3),
        "decision_ms_p99": float(np.percentile(dt, 99) * 1e3),
        "decision_cpu_ms_p50": float(np.median(dc) * 1e3),
        "decision_cpu_ms_p99": float(np.percentile(dc, 99) * 1e3),
        "per_seed": [
            {"seed": r.seed, "allocated": a.tolist(), "fragmented": f.tolist()}
            for r, a, f in zip(runs, alloc, frag, strict=True)
        ],
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def pack(
        pods: Annotated[Path, typer.Option("--pods", help="Pod list CSV (openb layout).")],
        pool: Annotated[
            str | None,
            typer.Option(
                "--pool",
                help="The nodes: a node list CSV (sn,cpu_milli,...) or a pool name. Required.",
                show_default=False,
            ),
        ] = None,
        profile: Annotated[
            str | None,
            typer.Option(
                "--profile",
                help="Placement profile (filters + scorers): random, dotprod, clustering, "
                "packing, bestfit, fgd, fsgd. Default fgd.",
                show_default=False,
            ),
        ] = None,
        seeds: Annotated[str, typer.Option("--seeds", help="e.g. 42-51 or 42,43.")] = "42",
        tune: Annotated[
            float, typer.Option("--tune", help="Stop when requests reach tune x capacity.")
        ] = 1.3,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write per-seed curves and the summary.")
        ] = None,
        nodes: Annotated[
            str | None, typer.Option("--nodes", hidden=True, help="Old name of --pool.")
        ] = None,
        policy: Annotated[
            str | None, typer.Option("--policy", hidden=True, help="Old name of --profile.")
        ] = None,
    ) -> None:
        """FGD's experiment: pods arrive (shuffled per seed) until their device request
        reaches TUNE x capacity; report allocation and fragmentation at each 1% arrived."""
        from computepool.placement.openb import load_nodes, read_pods
        from computepool.placement.pack import run_pack
        from computepool.placement.profiles import profile_names

        nodes = alias(pool, nodes, "--pool", "--nodes")
        policy = alias(profile, policy, "--profile", "--policy") or "fgd"
        if nodes is None:
            raise fail("give the nodes: --pool POOL_NAME or --pool NODES.csv")
        if policy not in profile_names():
            raise fail(f"unknown placement profile {policy!r}; known: {', '.join(profile_names())}")
        if not 0 < tune <= 3:
            raise fail(f"--tune {tune}: must be within (0, 3]")
        seed_list = load_or_exit(lambda: parse_seeds(seeds))
        state = load_or_exit(lambda: load_nodes(nodes))
        pod_list = load_or_exit(lambda: read_pods(pods))
        top = int(round(tune * 100))
        runs = []
        with progress_bar(f"pack {policy}") as update:
            for i, s in enumerate(seed_list):
                runs.append(run_pack(state, pod_list, policy, s, tune))
                update((i + 1) / len(seed_list))
        doc = summarise(runs, top)
        table = Table(title=f"{pods.name} · {policy} · tune {tune}")
        for col in ("seed", f"allocated @{top}%", "frag @50%", "frag @70%", "frag @90%"):
            table.add_column(col, justify="right")
        for row in doc["per_seed"]:  # type: ignore[union-attr]
            a, f = row["allocated"], row["fragmented"]
            table.add_row(
                str(row["seed"]),
                f"{a[top]:.2f}%",
                *(f"{f[k]:.1f}%" if k <= top else "-" for k in (50, 70, 90)),
            )
        fr = doc["fragmented_at"]
        table.add_row(
            "mean",
            f"{doc['allocated_at_top']:.2f}%",
            *(f"{fr[k]:.1f}%" if k in fr else "-" for k in (50, 70, 90)),  # type: ignore[operator]
        )
        console.print(table)
        console.print(
            f"decision time over {len(state)} nodes: wall median {doc['decision_ms_p50']:.3f} ms,"
            f" p99 {doc['decision_ms_p99']:.3f} ms; CPU median {doc['decision_cpu_ms_p50']:.3f}"
            f" ms, p99 {doc['decision_cpu_ms_p99']:.3f} ms"
        )
        if json_out is not None:
            json_out.write_text(json.dumps(doc, indent=1) + "\n")
            console.print(f"wrote {json_out}")
