"""Catalog: accelerator types, regions, throughput tables and example pools, read from data files.

See docs/pools.md for the file formats and DATA.md for where each shipped file comes from.
"""

from computepool.catalog.accelerators import load_accelerators
from computepool.catalog.catalog import Catalog
from computepool.catalog.errors import CatalogFileError, Problem
from computepool.catalog.pools import PoolFileError, list_pools, load_pool, validate_pool_file
from computepool.catalog.regions import Link, load_network, load_regions

__all__ = [
    "Catalog",
    "CatalogFileError",
    "Link",
    "PoolFileError",
    "Problem",
    "list_pools",
    "load_accelerators",
    "load_network",
    "load_pool",
    "load_regions",
    "validate_pool_file",
]
