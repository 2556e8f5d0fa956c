"""Plain data: the nouns of DESIGN.md as frozen dataclasses. No I/O here."""

from computepool.model.accelerator import AcceleratorType
from computepool.model.allocation import Allocation
from computepool.model.job import Dataset, Job, JobKind
from computepool.model.pool import Flavor, Node, Pool
from computepool.model.region import Region
from computepool.model.status import Status, StatusCode
from computepool.model.tenant import FlavorQuota, Tenant
from computepool.model.throughput import Throughputs

__all__ = [
    "AcceleratorType",
    "Allocation",
    "Dataset",
    "Flavor",
    "FlavorQuota",
    "Job",
    "JobKind",
    "Node",
    "Pool",
    "Region",
    "Status",
    "StatusCode",
    "Tenant",
    "Throughputs",
]
