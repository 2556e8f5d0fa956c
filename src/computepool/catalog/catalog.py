"""``Catalog``: accelerator types, regions and the network, loaded together (shipped or custom files)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from computepool.catalog.accelerators import AcceleratorCatalog, load_accelerator_catalog
from computepool.catalog.errors import CatalogFileError, Problem
from computepool.catalog.files import as_ref, label
from computepool.catalog.regions import Link, Network, links_for, load_network, load_regions
from computepool.model.accelerator import AcceleratorType
from computepool.model.region import Region

if TYPE_CHECKING:
    from computepool.model.pool import Pool


@dataclass(frozen=True)
class Catalog:
    accelerator_catalog: AcceleratorCatalog
    regions: Mapping[str, Region]
    network: Network

    @property
    def accelerators(self) -> Mapping[str, AcceleratorType]:
        return self.accelerator_catalog.types

    @classmethod
    def load(
        cls,
        accelerators: str | Path | None = None,
        regions: str | Path | None = None,
        network: str | Path | None = None,
        currency: str | Path | None = None,
    ) -> Catalog:
        """Load the shipped catalog, or the files given; network links must name known regions."""
        accel = load_accelerator_catalog(accelerators, currency)
        regs = load_regions(regions)
        net = load_network(network)
        problems = [
            Problem(f"links[{i}]", f"unknown region {name!r}; known: {', '.join(sorted(regs))}")
            for i, key in enumerate(net.links)
            for name in key
            if name not in regs
        ]
        if problems:
            raise CatalogFileError(label(as_ref(network, "network.yaml")), problems)
        return cls(accel, regs, net)

    def links(self, region_names: Iterable[str]) -> dict[tuple[str, str], Link]:
        """A ``Link`` (RTT, bandwidth, derived flag, source) for every pair of the named regions."""
        return links_for((self.regions[r] for r in region_names), self.network)

    def pool(self, name_or_path: str | Path) -> Pool:
        from computepool.catalog.pools import load_pool

        return load_pool(name_or_path, catalog=self)
