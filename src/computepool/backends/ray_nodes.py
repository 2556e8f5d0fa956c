"""Which of the pool's nodes are alive on the Ray cluster, for the Ray backend.

A node that dies is cordoned in the placer and its flavor's share of the round goes with it:
when every node of a flavor is down, ``live_flavors`` leaves the flavor out of the round
(``backends/flavor_gate.py``, as the federated backend does for lost clusters), so a sticky
requeued job moves to another flavor it may use instead of waiting for the dead one. A node
back under its name (a new Ray node id) is uncordoned and its flavor returns.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from computepool.backends.flavor_gate import live_flavors
from computepool.backends.ray_inventory import current_nodes
from computepool.model.pool import Pool

log = logging.getLogger("computepool.ray")


@dataclass
class RayNodes:
    pool: Pool
    #: Ray node id of each pool node (replaced when a node comes back under its name).
    node_ids: list[str]
    list_nodes: Callable[[], list[Mapping[str, Any]]]
    every_s: float = 0.5
    #: Pool nodes that are down.
    down: set[int] = field(default_factory=set)
    #: The placer whose nodes are cordoned and uncordoned (``cordon``/``uncordon``).
    placer: Any = None
    #: A node went down or came back since the backend last observed.
    changed: bool = False
    _checked: float = -math.inf
    _live: np.ndarray | None = None

    def check(self) -> list[int]:
        """Look at the cluster's nodes if due; the pool nodes that died since the last look."""
        if time.monotonic() - self._checked < self.every_s:
            return []
        self._checked = time.monotonic()
        try:
            # a node that joined misconfigured must not stop the watch over the others
            now_nodes = {n.name: n for n in current_nodes(self.list_nodes(), strict=False)}
        except Exception:  # the GCS is briefly unreachable: check again next round
            log.exception("cannot list Ray nodes")
            return []
        died = []
        for i, node in enumerate(self.pool.nodes):
            cur = now_nodes.get(node.name)
            alive = cur is not None and cur.alive
            if alive and (i in self.down or cur.node_id != self.node_ids[i]):
                self.node_ids[i] = cur.node_id
                if i in self.down:
                    log.info("Ray node back", extra={"fields": {"detail": node.name}})
                    self._set(i, up=True)
            elif not alive and i not in self.down:
                log.warning("Ray node down", extra={"fields": {"detail": node.name}})
                self._set(i, up=False)
                died.append(i)
        return died

    def _set(self, node: int, up: bool) -> None:
        (self.down.discard if up else self.down.add)(node)
        self.changed, self._live = True, None
        act = getattr(self.placer, "uncordon" if up else "cordon", None)
        if act is not None:
            act(node)

    def live_flavors(self) -> np.ndarray:
        """(F,) bool: flavors with a node that is not down."""
        live = self._live
        if live is None:
            live = live_flavors(self.pool.node_flavor, len(self.pool.flavors), set(self.down))
            self._live = live
        return live
