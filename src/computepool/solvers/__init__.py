"""Solvers: thin, configured entry points to the libraries that solve LPs and MILPs (HiGHS)."""
