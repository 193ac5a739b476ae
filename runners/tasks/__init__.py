"""Tasks: what differs between classification and detection (data, model, loss of a batch,
evaluation), behind one interface (``runners.tasks.registry``)."""
