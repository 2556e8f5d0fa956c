"""computepool: a heterogeneous, multi-tenant, multi-region AI-accelerator pool run as one computer."""

__version__ = "0.1.0"
