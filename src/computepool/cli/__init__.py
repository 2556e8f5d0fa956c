"""The ``cpool`` command line (Typer). Presentation lives here, not in the core."""
