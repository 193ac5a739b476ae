"""Distributed training (torchrun, DDP): the world, process groups, collectives, DDP wrapping.
Every call is a no-op on one process."""
