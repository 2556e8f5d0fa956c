"""Trace-driven simulation: a simulated clock and cluster behind the same Scheduler."""
