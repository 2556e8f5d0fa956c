"""Catalog: accelerator types, regions, throughput tables and example pools, read from data files."""
