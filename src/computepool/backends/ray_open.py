"""Opening a Ray cluster for a control plane or an agent: connect, read its pool, and make
its ``RayCluster`` (``backends/ray_backend.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from computepool.backends.ray_backend import RayCluster
from computepool.backends.ray_inventory import connect, current_nodes
from computepool.backends.worker_env import Launch
from computepool.model.pool import Pool


def open_ray(
    backend: str,
    environ: Mapping[str, str],
    checkpoint_root: Path | None = None,
    regions: frozenset[str] | None = None,
) -> tuple[Pool, Callable[..., RayCluster]]:
    """Connect to the cluster the backend names; its pool (only the nodes of ``regions``
    when given), and a factory of its ``RayCluster``."""
    from computepool.backends.ray_inventory import parse_backend, pool_from_nodes

    addr = parse_backend(backend, environ)
    ours = connect(addr)
    import ray

    try:
        nodes = [n for n in current_nodes(ray.nodes()) if n.alive]
        if regions is not None:
            nodes = [n for n in nodes if n.region in regions]
            if not nodes:
                raise ValueError(f"no Ray node in the regions {', '.join(sorted(regions))}")
        pool = pool_from_nodes(nodes)
    except Exception:
        if ours:
            ray.shutdown()
        raise

    def factory(
        pool: Pool, root: Path, describe: Callable[[int], Launch], grace_s: float
    ) -> RayCluster:
        c = RayCluster(
            pool, nodes, root, describe, grace_s=grace_s, checkpoint_root=checkpoint_root
        )
        c.disconnect_on_shutdown = ours
        return c

    return pool, factory
