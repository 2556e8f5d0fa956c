"""Latency-bound routing: which region and flavor answers a request in time, or the edge."""
