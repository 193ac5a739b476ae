"""The command line's glue: the multirun callbacks and the sweep's outcome (exit status)."""
