"""Multi-region pools for residency tests (until the catalog's regions are on main)."""

from __future__ import annotations

from computepool.model.pool import Node, Pool
from computepool.model.region import Region
from tests.builders import accel

REGIONS = {
    "cn-ulanqab": Region("cn-ulanqab", "CN", 0.053, 1.2, 536.6, 41.0, 113.1, 0.09),
    "cn-hangzhou": Region("cn-hangzhou", "CN", 0.088, 1.25, 536.6, 30.27, 120.15, 0.09),
    "ap-singapore": Region("ap-singapore", "SG", 0.20, 1.3, 420.0, 1.35, 103.82, 0.09),
    "eu-frankfurt": Region("eu-frankfurt", "EU", 0.18, 1.3, 363.0, 50.11, 8.68, 0.09),
    "us-central": Region("us-central", "US", 0.068, 1.15, 412.7, 41.26, -95.86, 0.09),
}


def region_pool(
    layout: dict[str, dict[str, tuple[int, int]]] | None = None,
    bandwidth_gbps: float = 10.0,
) -> Pool:
    """``layout``: region -> {accelerator: (nodes, per_node)}; default one A and B per region."""
    layout = layout or {
        "cn-ulanqab": {"A": (2, 8)},
        "cn-hangzhou": {"B": (1, 8)},
        "ap-singapore": {"A": (1, 8)},
        "eu-frankfurt": {"A": (1, 8)},
    }
    names = sorted({a for accs in layout.values() for a in accs})
    accels = {a: accel(a, tflops=989.0 if a == "A" else 500.0) for a in names}
    nodes = [
        Node(f"{r}-{a}-{i}", r, a, per)
        for r, accs in layout.items()
        for a, (n, per) in accs.items()
        for i in range(n)
    ]
    regs = {r: REGIONS[r] for r in layout}
    rs = sorted(regs)
    bw = {(a, b): (400.0 if a == b else bandwidth_gbps) for i, a in enumerate(rs) for b in rs[i:]}
    rtt = {(a, b): (0.5 if a == b else 50.0) for i, a in enumerate(rs) for b in rs[i:]}
    return Pool("regions", accels, regs, tuple(nodes), rtt_ms=rtt, bandwidth_gbps=bw)
