"""Scenario files: several tenants, their data and work, run end to end into a report."""
