"""Admission: which flavors a job may use (feasibility, residency) and whether it may run now (quota)."""
