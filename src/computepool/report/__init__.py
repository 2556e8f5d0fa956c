"""Self-contained HTML reports (no CDN): simulation and plan results."""
