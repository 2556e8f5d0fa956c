"""Federation: regional clusters under one control plane (``cpool agent`` per cluster)."""
