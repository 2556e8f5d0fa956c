"""Live clusters the scheduler drives: local processes (``local``); Ray later."""
