"""The training engine: the loop, optimizer and learning-rate schedule, checkpoints, and the
divergence guard."""
